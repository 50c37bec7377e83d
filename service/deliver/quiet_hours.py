"""Quiet hours (``mute_time_intervals``): is a moment muted, and when does the mute end?

An interval names weekdays and local time ranges in its own time zone; ``22:00``-``07:00``
spans midnight (and counts for the weekday it starts on). No ranges means the whole day.

Usage::

    until = muted_until([nights], now)     # None when not muted, else when it ends
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from config.notify import WEEKDAYS, MuteTimeInterval

__all__ = ["is_muted", "muted_until"]

# Long enough for any weekly pattern; an interval covering every minute never ends.
_HORIZON_DAYS = 8


def _active(interval: MuteTimeInterval, when: datetime) -> bool:
    local = when.astimezone(ZoneInfo(interval.time_zone))
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    if not interval.times:
        return today in interval.weekdays
    now = local.time()
    for span in interval.times:
        if span.start <= span.end:
            if today in interval.weekdays and span.start <= now < span.end:
                return True
        elif (today in interval.weekdays and now >= span.start) or (
            yesterday in interval.weekdays and now < span.end
        ):
            return True
    return False


def is_muted(intervals: Sequence[MuteTimeInterval], when: datetime) -> bool:
    return any(_active(interval, when) for interval in intervals)


def _boundaries(interval: MuteTimeInterval, after: datetime) -> list[datetime]:
    """Every local midnight and range end in the coming days: where a mute can stop."""
    zone = ZoneInfo(interval.time_zone)
    start_day = after.astimezone(zone).date()
    ends = [time(0, 0)] + [span.end for span in interval.times]
    out: list[datetime] = []
    for offset in range(-1, _HORIZON_DAYS + 1):
        day = start_day + timedelta(days=offset)
        out.extend(datetime.combine(day, end, tzinfo=zone) for end in ends)
    return out


def muted_until(intervals: Sequence[MuteTimeInterval], when: datetime) -> datetime | None:
    """None if ``when`` is not muted; else the first moment after it that is not."""
    if not is_muted(intervals, when):
        return None
    candidates = sorted(
        {b for interval in intervals for b in _boundaries(interval, when) if b > when}
    )
    for candidate in candidates:
        if not is_muted(intervals, candidate):
            return candidate
    return when + timedelta(days=_HORIZON_DAYS)
