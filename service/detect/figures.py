"""Figures several rules read from an account's state: spend by day, burn rates, credit estimates.

Spend by day comes from ``bc_cost`` (UTC days) when the account has any, else from the
``report`` source (the account's own days): two views of one spend, never added together.

Usage::

    per_day = grant_burn(state, settings)               # ad credit spent per day, or None
    entries, left = credit_estimates(state, ledger)     # live credits and their unused estimate
    with remembered_burns():                            # a batch: each state's rate once
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from config.settings import DetectSettings
from service.detect import burn
from service.detect.ledger import AccountLedger, Entry, allocate, ledger_entries, unused
from service.detect.state import AccountState
from workers.contract.snapshots import PROMOTION_EXPIRED

__all__ = [
    "cash_burn",
    "credit_estimates",
    "expiries",
    "grant_burn",
    "read_times",
    "remembered_burns",
    "source",
    "spend_days",
    "today",
    "total_burn",
]

Part = Literal["cash", "grant", "total"]


def today(state: AccountState) -> date:
    assert state.now is not None
    return state.now.astimezone(UTC).date()


def source(state: AccountState) -> str:
    """The preferred source of spend figures: ``bc_cost`` once it has any."""
    return "bc_cost" if state.spend.get("bc_cost") or state.rolled.get("bc_cost") else "report"


def spend_days(state: AccountState, part: Part) -> dict[date, Decimal]:
    """One part of the spend per day, from the preferred source; a span of rolled-up old
    days counts as its first day (see ``rollup``: no rule can tell the difference)."""
    preferred = source(state)
    days = {first: getattr(span, part) for first, span in state.rolled.get(preferred, {}).items()}
    days.update(
        (day, getattr(figure, part)) for day, figure in state.spend.get(preferred, {}).items()
    )
    return days


def expiries(state: AccountState, ledger: AccountLedger) -> list[datetime]:
    """Instants at which credit expired (or will): balance drops there are forfeits."""
    instants = [credit.valid_to for credit in ledger.credits]
    instants += [
        record.create_time
        for record in state.transactions.values()
        if record.transaction_type == PROMOTION_EXPIRED
    ]
    return instants


def read_times(state: AccountState) -> dict[date, datetime]:
    """When each day's figure (of the preferred source) was read."""
    return {day: figure.observed_at for day, figure in state.spend.get(source(state), {}).items()}


# Within ``remembered_burns`` (a detector batch), ``grant_burn`` of the same figures, by the
# identity of what it reads: a batch asks it up to three times of each state (the depletion
# forecast, the risk forecast, the list row), and the figures are frozen, so the first answer
# holds for the others. Each entry keeps what its key names alive, so an id in a key cannot
# be another object's; the memo goes with its batch (kept longer, it kept thousands of old
# states' figures alive, and the whole detector ran slower for it).
_BurnKey = tuple[int, int, int, int, int, datetime, int]
_BURNS: ContextVar[dict[_BurnKey, tuple[object, Decimal | None]] | None] = ContextVar(
    "burns", default=None
)


@contextmanager
def remembered_burns() -> Iterator[None]:
    """``grant_burn`` answers each state's figures once within (per task: a context var)."""
    token = _BURNS.set({})
    try:
        yield
    finally:
        _BURNS.reset(token)


def grant_burn(
    state: AccountState, settings: DetectSettings, ledger: AccountLedger
) -> Decimal | None:
    """Ad credit spent per day: daily grant spend refined by drops of the grant balance."""
    assert state.now is not None
    memo = _BURNS.get()
    read = (state.history, state.spend, state.rolled, state.transactions, ledger.credits)
    history, spend, rolled, transactions, credits = map(id, read)
    key = (history, spend, rolled, transactions, credits, state.now, settings.burn_days)
    known = memo.get(key) if memo is not None else None
    if known is not None:
        return known[1]
    points = [(p.at, p.grant) for p in state.history]
    per_day = burn.rate(
        spend_days(state, "grant"),
        points,
        today(state),
        settings.burn_days,
        expiries(state, ledger),
    )
    if memo is not None:
        memo[key] = (read, per_day)
    return per_day


def cash_burn(state: AccountState, settings: DetectSettings) -> Decimal | None:
    """Cash spent per day: daily cash spend refined by drops of the cash balance."""
    points = [(p.at, p.cash) for p in state.history]
    return burn.rate(spend_days(state, "cash"), points, today(state), settings.burn_days)


def total_burn(
    state: AccountState, settings: DetectSettings, ledger: AccountLedger
) -> Decimal | None:
    """All spend per day: what cash will have to pay once the credit is gone."""
    points = [(p.at, p.grant + p.cash) for p in state.history]
    return burn.rate(
        spend_days(state, "total"),
        points,
        today(state),
        settings.burn_days,
        expiries(state, ledger),
    )


def credit_estimates(
    state: AccountState, ledger: AccountLedger
) -> tuple[list[Entry], dict[str, Decimal]]:
    """Every ledger entry, and the reconciled unused estimate of each live one."""
    assert state.now is not None
    entries = ledger_entries(ledger, state.transactions)
    if not entries:
        return entries, {}  # the usual account (every list row asks): nothing to allocate
    used = allocate(entries, spend_days(state, "grant"), read_times(state))
    return entries, unused(entries, used, grant_balance=state.grant, at=state.now)
