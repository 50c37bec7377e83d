"""Time zones as the TikTok API writes them, read in one place.

The API uses three spellings: ``UTC±HH:MM`` on transaction rows (``"UTC+08:00"``; not an
IANA name, so ``ZoneInfo`` refuses it), ``Etc/GMT±N`` on ad accounts (POSIX sign: ``Etc/GMT-8``
is UTC+8) and IANA names (``America/New_York``). ``zone`` turns any of them into a tzinfo;
``local_time`` reads a ``"YYYY-MM-DD HH:MM:SS"`` wall-clock time in one of them.

Usage::

    zone("UTC+08:00")                                  # timezone(timedelta(hours=8))
    local_time("2026-11-01 08:00:00", "UTC+08:00")     # 2026-11-01 00:00:00+00:00
    wall_time(instant, "Etc/GMT-8")                    # "2026-11-01 08:00:00"
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WALL_TIME_FORMAT", "local_time", "offset_name", "wall_time", "zone"]

WALL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# "UTC+08:00", "UTC-05:30", "GMT+8", "UTC+0800"; a bare "UTC"/"GMT" is handled by ZoneInfo.
_OFFSET = re.compile(r"^(?:UTC|GMT)\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
# Real offsets run from UTC-12:00 to UTC+14:00.
_MAX_OFFSET = timedelta(hours=14)


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The tzinfo a zone name means; ValueError if it is none of the API's spellings."""
    text = name.strip()
    match = _OFFSET.match(text)
    if match is not None:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset > _MAX_OFFSET or int(minutes or 0) >= 60:
            raise ValueError(f"time zone offset out of range: {name!r}")
        return UTC if not offset else timezone(-offset if sign == "-" else offset)
    if not text or len(text) > 64:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def local_time(text: str, zone_name: str) -> datetime:
    """``"YYYY-MM-DD HH:MM:SS"`` read in ``zone_name``, as an aware UTC datetime.

    Raises ValueError if either is unreadable.
    """
    naive = datetime.strptime(text.strip(), WALL_TIME_FORMAT)  # noqa: DTZ007 - zone next
    return naive.replace(tzinfo=zone(zone_name)).astimezone(UTC)


def wall_time(instant: datetime, zone_name: str) -> str:
    """An instant as ``"YYYY-MM-DD HH:MM:SS"`` on the wall clock of ``zone_name``."""
    return instant.astimezone(zone(zone_name)).strftime(WALL_TIME_FORMAT)


def offset_name(instant: datetime, zone_name: str) -> str:
    """The ``UTC±HH:MM`` spelling of ``zone_name``'s offset at ``instant`` (transaction rows)."""
    offset = instant.astimezone(zone(zone_name)).utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
