"""Burn rates: how fast an account spends, from daily figures refined by intraday balances.

``rate`` blends two estimates, weighting each by the time it covers:

- the average of the last ``burn_days`` complete days (days before today; leading days
  without any spend are skipped, so a new account is not averaged down by days before it
  started), weight = number of days used;
- the intraday rate: the drops of a balance over the trailing 24 h of observations (rises are
  top-ups, not spend; an interval in which credit expired is left out, as a forfeit is not
  spend), per day, weight = the span it covers, in days (at most 1).

``rate = (daily_average * days + intraday * span) / (days + span)``; None if neither exists.

Usage::

    per_day = rate(daily={date(2026, 11, 1): Decimal("240")}, points=[(t0, 450), (t1, 430)],
                   today=date(2026, 11, 2), burn_days=3)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import pairwise
from operator import lt, sub

__all__ = ["INTRADAY_WINDOW", "daily_average", "intraday", "rate", "seconds"]

INTRADAY_WINDOW = timedelta(hours=24)
_DAY = Decimal(86_400)
_MICROSECOND = timedelta(microseconds=1)
_ZERO = Decimal(0)
_POSITIVE = partial(lt, _ZERO)


def seconds(span: timedelta) -> Decimal:
    """A timedelta as exact seconds (``total_seconds`` would be a float)."""
    return Decimal(span // _MICROSECOND).scaleb(-6)


def daily_average(
    daily: Mapping[date, Decimal], today: date, burn_days: int
) -> tuple[Decimal, int] | None:
    """The mean of the last ``burn_days`` complete days with data, and how many were used."""
    first = min((day for day, amount in daily.items() if day < today and amount > 0), default=None)
    if first is None:
        return None
    days = [today - timedelta(days=back) for back in range(1, burn_days + 1)]
    used = [daily[day] for day in days if day >= first and day in daily]
    if not used:
        return None
    return sum(used, Decimal(0)) / len(used), len(used)


def intraday(
    points: Sequence[tuple[datetime, Decimal]], skip: Sequence[datetime] = ()
) -> tuple[Decimal, Decimal] | None:
    """(rate per day, span in days up to 1) from balance drops over the trailing 24 h.

    Intervals that contain an instant of ``skip`` (credit expiries) are left out entirely.
    """
    if len(points) < 2:
        return None
    latest = points[-1][0]
    # Points are oldest first: the window's first one is found by bisection.
    first = bisect_left(points, latest - INTRADAY_WINDOW, key=_time)
    window = points[first:] if first else points
    # Runs for every balance snapshot, over up to a day of points: the span is summed as a
    # timedelta (exact, and much cheaper than Decimal seconds per interval), and only the
    # expiry instants inside the window are checked per interval. Without any (nearly
    # always) the intervals are the whole window: the span is its ends' difference, and
    # only the drops are looked at pair by pair.
    inside = [instant for instant in skip if window[0][0] < instant <= latest]
    if not inside:
        span = latest - window[0][0]
        # Each drop is a balance minus the next one; the positive ones summed in C (map,
        # filter, sum): this runs on every balance snapshot, two or three times.
        balances = [balance for _, balance in window]
        drops = sum(filter(_POSITIVE, map(sub, balances, balances[1:])), _ZERO)
    else:
        span = timedelta(0)
        drops = Decimal(0)
        for (start, before), (end, after) in pairwise(window):
            if any(start < instant <= end for instant in inside):
                continue
            span += end - start
            if before > after:
                drops += before - after
    if span <= timedelta(0):
        return None
    days = seconds(span) / _DAY
    return drops / days, min(days, Decimal(1))


def _time(point: tuple[datetime, Decimal]) -> datetime:
    return point[0]


def rate(
    daily: Mapping[date, Decimal],
    points: Sequence[tuple[datetime, Decimal]],
    today: date,
    burn_days: int,
    skip: Sequence[datetime] = (),
) -> Decimal | None:
    """Spend per day, blended from complete days and intraday drops; None if unknown."""
    average = daily_average(daily, today, burn_days)
    recent = intraday(points, skip)
    weight = Decimal(0)
    total = Decimal(0)
    if average is not None:
        total += average[0] * average[1]
        weight += average[1]
    if recent is not None:
        total += recent[0] * recent[1]
        weight += recent[1]
    if weight == 0:
        return None
    return total / weight
