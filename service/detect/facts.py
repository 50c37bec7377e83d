"""Recording what a snapshot says into an advertiser's state, once.

This is where "nothing twice" is decided, per kind of fact:

- ``account_balance``: applied only if newer than the newest balance seen;
- ``daily_spend``: the newest observation of a (source, day) *replaces* the day's figure; an
  older or equal one changes nothing, so revised spend is never counted twice;
- ``credit_transaction``: each ``transaction_id`` is recorded once, matched to the declared
  credit it belongs to (or left undeclared).

Usage::

    recorded = record(state, snapshot, ledger)    # None: nothing new, emit nothing
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from math import ceil
from typing import Any

from msgspec.structs import replace

from config.settings import DetectSettings
from service.detect import figures, rollup
from service.detect.burn import INTRADAY_WINDOW, seconds
from service.detect.ledger import AccountLedger, match_expired, match_issued
from service.detect.state import (
    AccountState,
    BalancePoint,
    DayFigure,
    Midnights,
    Profile,
    Spans,
    SpendDays,
    TransactionRecord,
)
from workers.contract.snapshots import (
    PROMOTION_ISSUED,
    AccountBalanceSnapshot,
    CreditTransactionSnapshot,
    DailySpendSnapshot,
)
from workers.contract.wire import CENT

__all__ = ["AccountSnapshot", "midnights_for", "record", "thin"]

AccountSnapshot = AccountBalanceSnapshot | DailySpendSnapshot | CreditTransactionSnapshot

# Spend older than this is dropped: no rule looks further back (ladder windows and credit
# validity are bounded by it too; a longer one loses its oldest days). Within it, days older
# than the spend window are kept as summed spans (``rollup``).
SPEND_RETENTION = timedelta(days=120)
TRANSACTION_RETENTION = timedelta(days=400)
# Balance points kept as observed; older ones are thinned to one per hour (``thin``).
FULL_RESOLUTION = timedelta(hours=1)
# Midnight grant balances kept for reconciliation: enough to outlast the report lag.
MIDNIGHTS_KEPT = 7
_DAY = timedelta(days=1)


def record(
    state: AccountState | None,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    window: timedelta = rollup.MIN_WINDOW,
    midnights_kept: int = MIDNIGHTS_KEPT,
) -> AccountState | None:
    """The state with the snapshot's fact in it; None if the fact is already known.

    ``window`` is how far back spend days are kept one by one (``rollup.window``), and
    ``midnights_kept`` how many midnight balances (``midnights_for``)."""
    current = state or AccountState(advertiser_id=snapshot.advertiser_id)
    # Each kind's fact is the fields it changes: the state is copied once, with them and
    # the clock and profile (a copy of a state is a fifth of recording a balance).
    changes: dict[str, Any] | None
    if isinstance(snapshot, AccountBalanceSnapshot):
        changes = _balance(current, snapshot, midnights_kept)
    elif isinstance(snapshot, DailySpendSnapshot):
        changes = _spend(current, snapshot, ledger, window)
    else:
        changes = _transaction(current, snapshot, ledger)
    if changes is None:
        return None
    now = snapshot.observed_at if current.now is None else max(current.now, snapshot.observed_at)
    known = current.profile
    name = snapshot.advertiser_name or (known.advertiser_name if known else "")
    profile = known
    if known is None or (known.advertiser_name, known.bc_id, known.currency) != (
        name,
        snapshot.bc_id,
        snapshot.currency,
    ):
        profile = Profile(advertiser_name=name, bc_id=snapshot.bc_id, currency=snapshot.currency)
    return replace(current, **changes, now=now, profile=profile)


def midnights_for(settings: DetectSettings) -> int:
    """Midnight balances worth keeping: reconciliation compares the newest day settled
    ``reconcile_lag_h`` after it ended, so a few days beyond the lag (at most
    ``MIDNIGHTS_KEPT``)."""
    return min(MIDNIGHTS_KEPT, ceil(settings.reconcile_lag_h / 24) + 3)


def _balance(
    state: AccountState, snapshot: AccountBalanceSnapshot, midnights_kept: int
) -> dict[str, Any] | None:
    if state.last_observed_at is not None and snapshot.observed_at <= state.last_observed_at:
        return None
    balances = snapshot.balances
    point = BalancePoint(
        at=snapshot.observed_at, grant=balances.grant_balance, cash=balances.cash_balance
    )
    history = thin([*state.history, point], now=snapshot.observed_at)
    previous = state.history[-1] if state.history else None
    return {
        "grant_at_midnight": _as_midnights(
            midnights(state.grant_at_midnight, previous, point, kept=midnights_kept)
        ),
        "last_observed_at": snapshot.observed_at,
        "valid_grant": balances.valid_grant_balance,
        "grant": balances.grant_balance,
        "frozen_grant": balances.frozen_grant_balance,
        "valid_cash": balances.valid_cash_balance,
        "balance_reminder": snapshot.balance_reminder,
        "cash_shared": snapshot.cash_is_shared,
        "history": history,
    }


def _as_midnights(marks: Mapping[date, Decimal]) -> Midnights:
    return marks if isinstance(marks, Midnights) else Midnights(marks)


def midnights(
    marks: Mapping[date, Decimal],
    previous: BalancePoint | None,
    point: BalancePoint,
    kept: int = MIDNIGHTS_KEPT,
) -> Mapping[date, Decimal]:
    """``marks`` with the grant balance at each UTC midnight between two balance points,
    interpolated between them, keyed by the day that ended there; the newest kept."""
    if previous is None or point.at <= previous.at:
        return marks
    if previous.at.astimezone(UTC).date() == point.at.astimezone(UTC).date():
        return marks  # no midnight in between: the usual case
    first = datetime.combine(previous.at.astimezone(UTC).date() + _DAY, time(), tzinfo=UTC)
    # After a long silence only the last few midnights matter.
    first = max(
        first,
        datetime.combine(point.at.astimezone(UTC).date(), time(), tzinfo=UTC) - kept * _DAY,
    )
    if first > point.at:
        return marks
    updated = dict(marks)
    span = seconds(point.at - previous.at)
    midnight = first
    while midnight <= point.at:
        share = seconds(midnight - previous.at) / span
        grant = previous.grant + (point.grant - previous.grant) * share
        updated[midnight.date() - _DAY] = grant.quantize(CENT)
        midnight += _DAY
    return dict(sorted(updated.items())[-kept:])


def thin(history: list[BalancePoint], *, now: datetime) -> list[BalancePoint]:
    """The balance points worth keeping: the last ``FULL_RESOLUTION`` as observed, and
    before that the first point of each clock hour, back to ``INTRADAY_WINDOW``.

    A day of 5-minute polls is 288 points: kept whole, it made each state ~17 KB to store
    and ~400 us to decode on every snapshot. Hourly points lose nothing of a steady burn
    (drops add up across merged intervals); a top-up within a thinned hour hides that hour's
    drops from the intraday estimate, which the daily figures outweigh anyway.
    """
    # ``history`` is oldest first (only newer points are ever appended): the two cut-offs
    # are found by bisection, and only the points in between are looked at one by one.
    times = [point.at for point in history]
    first = bisect_left(times, now - INTRADAY_WINDOW)
    split = bisect_left(times, now - FULL_RESOLUTION, lo=first)
    kept: list[BalancePoint] = []
    last_hour = None
    for point in history[first:split]:
        hour = point.at.timestamp() // 3600
        if hour != last_hour:
            kept.append(point)
            last_hour = hour
    kept += history[split:]
    return kept


def _spend(
    state: AccountState, snapshot: DailySpendSnapshot, ledger: AccountLedger, window: timedelta
) -> dict[str, Any] | None:
    source = snapshot.source
    oldest = (snapshot.observed_at - SPEND_RETENTION).date()
    start = (snapshot.observed_at - window).date()
    if source == "report" and figures.source(state) == "bc_cost":
        # No rule reads the report figures while there are cost figures: they are kept as
        # spans only (``rollup``), from the day they arrive.
        start = date.max
    days = {day: fig for day, fig in state.spend.get(source, {}).items() if day >= oldest}
    spans = rollup.drop_before(state.rolled.get(source, {}), oldest)
    cuts = rollup.cut_days(ledger, state.transactions)
    # Days that left the window since the last figure are rolled into spans first.
    for day in sorted(day for day in days if day < start):
        spans = rollup.roll(spans, day, days.pop(day), cuts) or spans
    figure = DayFigure(
        cash=snapshot.cash_amount,
        grant=snapshot.grant_amount,
        total=snapshot.total,
        observed_at=snapshot.observed_at,
    )
    if snapshot.day < oldest:
        return None
    if snapshot.day < start:
        # A day that old is final (backfill reads it once): summed into the spans, unless
        # one already holds it.
        added = rollup.roll(spans, snapshot.day, figure, cuts)
        if added is None:
            return None
        spans = added
    else:
        known = days.get(snapshot.day)
        if known is not None and snapshot.observed_at <= known.observed_at:
            return None
        days[snapshot.day] = figure  # a revision replaces the day's figure: never added twice
    spend = (
        {**state.spend, source: SpendDays(days)}
        if days
        else {name: figures_of for name, figures_of in state.spend.items() if name != source}
    )
    return {
        "spend": spend,
        "rolled": {**state.rolled, source: Spans(spans)} if spans else state.rolled,
    }


def _transaction(
    state: AccountState, snapshot: CreditTransactionSnapshot, ledger: AccountLedger
) -> dict[str, Any] | None:
    if snapshot.transaction_id in state.transactions:
        return None
    if snapshot.transaction_type == PROMOTION_ISSUED:
        credit = match_issued(ledger, state.transactions, snapshot.amount, snapshot.create_time)
    else:
        credit = match_expired(ledger, state.transactions, snapshot.create_time)
    entry = TransactionRecord(
        transaction_type=snapshot.transaction_type,
        amount=snapshot.amount,
        create_time=snapshot.create_time,
        credit_id=credit.id if credit else None,
    )
    oldest = snapshot.observed_at - TRANSACTION_RETENTION
    kept = {tid: r for tid, r in state.transactions.items() if r.create_time >= oldest}
    kept[snapshot.transaction_id] = entry
    return {"transactions": kept}
