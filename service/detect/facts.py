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
from datetime import datetime, timedelta

from service.detect.burn import INTRADAY_WINDOW
from service.detect.state import AccountState, BalancePoint, DayFigure, Profile, TransactionRecord
from service.ledger import AccountLedger, match_expired, match_issued
from workers.snapshots import (
    PROMOTION_ISSUED,
    AccountBalanceSnapshot,
    CreditTransactionSnapshot,
    DailySpendSnapshot,
)

__all__ = ["AccountSnapshot", "record", "thin"]

AccountSnapshot = AccountBalanceSnapshot | DailySpendSnapshot | CreditTransactionSnapshot

# Day figures older than this are dropped: no rule looks further back (ladder windows and
# credit validity are bounded by it too; a longer one loses its oldest days).
SPEND_RETENTION = timedelta(days=120)
TRANSACTION_RETENTION = timedelta(days=400)
# Balance points kept as observed; older ones are thinned to one per hour (``thin``).
FULL_RESOLUTION = timedelta(hours=1)


def record(
    state: AccountState | None, snapshot: AccountSnapshot, ledger: AccountLedger
) -> AccountState | None:
    """The state with the snapshot's fact in it; None if the fact is already known."""
    current = state or AccountState(advertiser_id=snapshot.advertiser_id)
    if isinstance(snapshot, AccountBalanceSnapshot):
        updated = _balance(current, snapshot)
    elif isinstance(snapshot, DailySpendSnapshot):
        updated = _spend(current, snapshot)
    else:
        updated = _transaction(current, snapshot, ledger)
    if updated is None:
        return None
    now = snapshot.observed_at if current.now is None else max(current.now, snapshot.observed_at)
    name = snapshot.advertiser_name or (current.profile.advertiser_name if current.profile else "")
    profile = Profile(advertiser_name=name, bc_id=snapshot.bc_id, currency=snapshot.currency)
    return updated.model_copy(update={"now": now, "profile": profile})


def _balance(state: AccountState, snapshot: AccountBalanceSnapshot) -> AccountState | None:
    if state.last_observed_at is not None and snapshot.observed_at <= state.last_observed_at:
        return None
    balances = snapshot.balances
    point = BalancePoint(
        at=snapshot.observed_at, grant=balances.grant_balance, cash=balances.cash_balance
    )
    history = thin([*state.history, point], now=snapshot.observed_at)
    return state.model_copy(
        update={
            "last_observed_at": snapshot.observed_at,
            "valid_grant": balances.valid_grant_balance,
            "grant": balances.grant_balance,
            "frozen_grant": balances.frozen_grant_balance,
            "valid_cash": balances.valid_cash_balance,
            "history": history,
        }
    )


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


def _spend(state: AccountState, snapshot: DailySpendSnapshot) -> AccountState | None:
    days = state.spend.get(snapshot.source, {})
    known = days.get(snapshot.day)
    if known is not None and snapshot.observed_at <= known.observed_at:
        return None
    figure = DayFigure(
        cash=snapshot.cash_amount,
        grant=snapshot.grant_amount,
        total=snapshot.total,
        observed_at=snapshot.observed_at,
    )
    oldest = (snapshot.observed_at - SPEND_RETENTION).date()
    kept = {day: fig for day, fig in days.items() if day >= oldest}
    kept[snapshot.day] = figure  # a revision replaces the day's figure: never added twice
    return state.model_copy(update={"spend": {**state.spend, snapshot.source: kept}})


def _transaction(
    state: AccountState, snapshot: CreditTransactionSnapshot, ledger: AccountLedger
) -> AccountState | None:
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
    return state.model_copy(update={"transactions": kept})
