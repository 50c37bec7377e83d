"""The credit ledger as the detectors see it: declared credits, undeclared ones, and estimates.

Credits come from the operators' declarations (``config/ledger.py``); a ``PROMOTION_ISSUED``
transaction that matches no declared credit becomes an *undeclared* entry (its amount and
date; no known expiry), so nothing is invisible. The API reports no per-credit usage, so:

- ``allocate`` spreads observed grant spend over the credits that were live on each day,
  earliest expiry first (as TikTok consumes them), each up to its amount;
- ``unused`` takes what that leaves and reconciles it against the observed grant balance:
  if the ledger holds more than the balance (spend before observation began, or lag), the
  excess is taken from the earliest-expiring credits. Per-credit figures are estimates;
  their total never exceeds the grant balance.
- ``forfeits`` projects what each credit will still hold at its expiry at a burn rate.

Usage::

    entries = ledger_entries(account_ledger, state.transactions)
    used = allocate(entries, grant_spend_by_day)
    left = unused(entries, used, grant_balance=state.grant, at=now)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from config.ledger import Credit, LadderProgram
from service.detect.burn import seconds
from service.detect.state import TransactionRecord
from workers.contract.snapshots import PROMOTION_ISSUED

__all__ = [
    "AccountLedger",
    "Entry",
    "allocate",
    "forfeits",
    "ledger_entries",
    "match_expired",
    "match_issued",
    "unused",
]

_DAY = Decimal(86_400)
_ONE_DAY = timedelta(days=1)
# How far a transaction's time may be from the declared date it is matched to (time zones,
# and "valid from" dates that are only dates).
_MATCH_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class AccountLedger:
    """One advertiser's declared credits and ladder programs."""

    credits: tuple[Credit, ...] = ()
    programs: tuple[LadderProgram, ...] = ()

    def credit(self, credit_id: str) -> Credit | None:
        return next((c for c in self.credits if c.id == credit_id), None)


@dataclass(frozen=True)
class Entry:
    """A credit that sits in the grant balance: declared, or undeclared (no known expiry)."""

    id: str
    amount: Decimal
    valid_from: datetime
    valid_to: datetime | None
    name: str = ""
    declared: bool = True
    order: tuple[int, datetime] = field(init=False)

    def __post_init__(self) -> None:
        # Earliest expiry first; credits without a known expiry last, oldest first.
        object.__setattr__(
            self,
            "order",
            (0, self.valid_to) if self.valid_to is not None else (1, self.valid_from),
        )

    def live(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)

    def live_share(self, day: date, until: datetime | None = None) -> Decimal:
        """The part (0 to 1) of the UTC ``day`` (up to ``until``, for a day read before it
        ended) during which the credit was live."""
        start = datetime.combine(day, time(), tzinfo=UTC)
        end = start + timedelta(days=1)
        if until is not None and start < until < end:
            end = until
        live_from = max(start, self.valid_from)
        live_to = end if self.valid_to is None else min(end, self.valid_to)
        if live_to <= live_from:
            return Decimal(0)
        return seconds(live_to - live_from) / seconds(end - start)


def ledger_entries(
    ledger: AccountLedger, transactions: Mapping[str, TransactionRecord]
) -> list[Entry]:
    """Declared grant credits, plus one undeclared entry per unmatched issued transaction."""
    entries = [
        Entry(
            id=credit.id,
            amount=credit.amount,
            valid_from=credit.valid_from,
            valid_to=credit.valid_to,
            name=credit.name,
        )
        for credit in ledger.credits
        if credit.in_grant_balance
    ]
    entries.extend(
        Entry(
            id=f"undeclared-{transaction_id}",
            amount=record.amount,
            valid_from=record.create_time,
            valid_to=None,
            declared=False,
        )
        for transaction_id, record in transactions.items()
        if record.transaction_type == PROMOTION_ISSUED and record.credit_id is None
    )
    return sorted(entries, key=lambda entry: entry.order)


def match_issued(
    ledger: AccountLedger,
    transactions: Mapping[str, TransactionRecord],
    amount: Decimal,
    at: datetime,
) -> Credit | None:
    """The declared credit an issued transaction is for: same amount, issued around its
    ``valid_from``, not matched before."""
    taken = {r.credit_id for r in transactions.values() if r.transaction_type == PROMOTION_ISSUED}
    for credit in ledger.credits:
        if (
            credit.in_grant_balance
            and credit.id not in taken
            and credit.amount == amount
            and credit.valid_from - _MATCH_SLACK <= at <= credit.valid_to
        ):
            return credit
    return None


def match_expired(
    ledger: AccountLedger, transactions: Mapping[str, TransactionRecord], at: datetime
) -> Credit | None:
    """The declared credit an expiry transaction is for: it expired around ``at``."""
    taken = {r.credit_id for r in transactions.values() if r.transaction_type != PROMOTION_ISSUED}
    for credit in ledger.credits:
        if (
            credit.in_grant_balance
            and credit.id not in taken
            and abs(credit.valid_to - at) <= _MATCH_SLACK
        ):
            return credit
    return None


def allocate(
    entries: Iterable[Entry],
    grant_spend: Mapping[date, Decimal],
    read_at: Mapping[date, datetime] | None = None,
) -> dict[str, Decimal]:
    """Grant spend per credit: each day's spend to the credits live that day, earliest
    expiry first, each up to its amount. Spend no credit can take stays unallocated.

    A credit live for part of a day (issued or expiring that day) takes at most that part of
    the day's spend: spend is assumed to be even over the day (over the part of it before
    ``read_at[day]``, for a figure read while the day was still running).
    """
    ordered = sorted(entries, key=lambda entry: entry.order)
    used = {entry.id: Decimal(0) for entry in ordered}
    # Days that ended before any credit was live give nothing: skipped (most of 120 days of
    # spend, for credits issued in the last weeks).
    first_live = min((entry.valid_from for entry in ordered), default=None)
    for day in sorted(grant_spend):
        if first_live is None or datetime.combine(day, time(), tzinfo=UTC) + _ONE_DAY <= first_live:
            continue
        left = grant_spend[day]
        for entry in ordered:
            if left <= 0:
                break
            share = entry.live_share(day, (read_at or {}).get(day))
            if share <= 0:
                continue
            take = min(left, grant_spend[day] * share, entry.amount - used[entry.id])
            used[entry.id] += take
            left -= take
    return used


def unused(
    entries: Iterable[Entry], used: Mapping[str, Decimal], *, grant_balance: Decimal, at: datetime
) -> dict[str, Decimal]:
    """What each live credit still holds, reconciled so the total is at most the balance."""
    live = sorted((e for e in entries if e.live(at)), key=lambda entry: entry.order)
    left = {e.id: max(e.amount - used.get(e.id, Decimal(0)), Decimal(0)) for e in live}
    excess = sum(left.values(), Decimal(0)) - max(grant_balance, Decimal(0))
    for entry in live:
        if excess <= 0:
            break
        take = min(excess, left[entry.id])
        left[entry.id] -= take
        excess -= take
    return left


def forfeits(
    entries: Iterable[Entry],
    left: Mapping[str, Decimal],
    *,
    burn_per_day: Decimal | None,
    now: datetime,
) -> dict[str, Decimal]:
    """What each credit (with an expiry) will still hold when it expires, if spend goes on at
    ``burn_per_day`` and consumes credits earliest expiry first."""
    result: dict[str, Decimal] = {}
    cursor = now
    rate = burn_per_day if burn_per_day is not None and burn_per_day > 0 else Decimal(0)
    for entry in sorted(entries, key=lambda e: e.order):
        if entry.id not in left or entry.valid_to is None:
            continue
        holding = left[entry.id]
        days = max(seconds(entry.valid_to - cursor) / _DAY, Decimal(0))
        spendable = rate * days
        if rate > 0 and spendable >= holding:
            cursor += timedelta(seconds=float(holding / rate * _DAY))
            result[entry.id] = Decimal(0)
        else:
            result[entry.id] = holding - spendable
            cursor = max(cursor, entry.valid_to)
    return result
