"""An advertiser's grant (ad credit) balance over the last days, for the status page's chart.

The detectors keep only the trailing 24 h of balance observations, but they keep each day's
grant spend (120 days) and every credit transaction. So the balance at the end of each
earlier day is rebuilt backwards from the oldest kept observation:
``balance(end of d - 1) = balance(end of d) + grant spend of d - issued on d + expired on d``.
Spend of the observation's own day is taken pro rata up to the observation (spend is assumed
even over the day, as ``service.detect.ledger.allocate`` assumes). Days before the first day with
spend figures are not guessed. The trailing 24 h are the observations themselves.

Usage::

    points = grant_history(state, days=14)       # [(at, grant balance)], oldest first
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from service.detect.burn import seconds
from service.detect.figures import read_times, spend_days
from service.detect.state import AccountState
from workers.contract.snapshots import PROMOTION_ISSUED

__all__ = ["grant_history"]

_ZERO = Decimal(0)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _moved(state: AccountState, start: datetime, end: datetime) -> Decimal:
    """Credit issued minus credit expired in ``(start, end]``: the non-spend balance change."""
    moved = _ZERO
    for record in state.transactions.values():
        if start < record.create_time <= end:
            issued = record.transaction_type == PROMOTION_ISSUED
            moved += record.amount if issued else -record.amount
    return moved


def grant_history(state: AccountState, *, days: int = 14) -> list[tuple[datetime, Decimal]]:
    """Grant balance points over the last ``days`` (API time), oldest first."""
    observed = sorted(state.history, key=lambda p: p.at)
    if not observed or state.last_observed_at is None:
        return []
    since = state.last_observed_at - timedelta(days=days)
    points = [(p.at, p.grant) for p in observed if p.at >= since]
    spend = spend_days(state, "grant")
    if not spend:
        return points
    read_at = read_times(state)
    first_day = min(spend)
    at, balance = observed[0].at, observed[0].grant
    day = at.astimezone(UTC).date()
    # The part of the observation's own day spent before it.
    day_start = _midnight(day)
    read = min(read_at.get(day, at), day_start + timedelta(days=1))
    share = Decimal(1)
    if read > day_start:
        share = min(seconds(at - day_start) / seconds(read - day_start), Decimal(1))
    balance += spend.get(day, _ZERO) * share - _moved(state, day_start, at)
    earlier: list[tuple[datetime, Decimal]] = []
    while day_start > since and day >= first_day:
        earlier.append((day_start, max(balance, _ZERO)))
        day -= timedelta(days=1)
        previous_start = _midnight(day)
        balance += spend.get(day, _ZERO) - _moved(state, previous_start, day_start)
        day_start = previous_start
    return [*reversed(earlier), *points]
