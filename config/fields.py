"""The value types settings are made of: names, TikTok ids, durations, secrets, globs, URLs.

Every config module (and every API model that takes the same values) builds on these, so a
value is read and refused the same way wherever it appears. Two kinds of identifier, each
with one definition:

- a **name** is chosen by the operator (receivers, connections, quiet-hour intervals, credit
  and ladder-program ids): letters, digits, ``_``, ``.`` and ``-``, 1-64 characters;
- a **TikTok id** is the API's (``advertiser_id``, ``bc_id``, ``app_id``): strings in v1.3
  (/work/shared/tiktok-api.md), read with the snapshot schemas' shape, letters, digits, ``_``
  and ``-``, 1-64 characters. No dot: a ledger entry or a URL for an id the snapshot
  stream refuses could never match an account.

Usage::

    class Entry(Section):
        name: Name
        advertiser_id: TikTokId
        wait: Duration = timedelta(seconds=30)    # "30s", "1h30m", 90
        token: Secret                              # "${TOKEN}" reads the environment
"""

from __future__ import annotations

import math
import os
import re
from datetime import time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
)

__all__ = [
    "APP_ID_PATTERN",
    "MAX_DURATION",
    "NAME_PATTERN",
    "TIKTOK_ID",
    "TIKTOK_ID_PATTERN",
    "Currency",
    "Duration",
    "GlobsByLabel",
    "Name",
    "Secret",
    "Section",
    "TikTokId",
    "check_glob",
    "check_http_url",
    "clock_time",
    "format_duration",
    "known_zone",
    "one_or_many",
    "parse_duration",
]

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# The bare form (no anchors), for ``re.fullmatch`` and for building a wider pattern.
TIKTOK_ID = r"[0-9A-Za-z_-]{1,64}"
TIKTOK_ID_PATTERN = f"^{TIKTOK_ID}$"
# A developer app's id, or empty where ``tiktok.app_id`` is the default.
APP_ID_PATTERN = f"^({TIKTOK_ID})?$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
TikTokId = Annotated[str, Field(min_length=1, max_length=64, pattern=TIKTOK_ID_PATTERN)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Section(BaseModel):
    """A settings section: unknown keys refused, frozen once read."""

    # inf and nan are no setting's value: they would overflow the time arithmetic they feed.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Longer than any wait or window means anything: larger values (or inf) would overflow the
# time arithmetic they feed, so they are refused like any other bad duration.
MAX_DURATION = timedelta(days=3650)


def parse_duration(value: Any) -> Any:
    """``90``, ``"5s"``, ``"30m"``, ``"1h30m"``, ``"3d"`` -> timedelta; anything else unchanged."""
    try:
        return _duration(value)
    except OverflowError:  # an API body may say 1e308 s: a 422, not a crash
        raise ValueError(f"duration out of range: {value!r}") from None


def _duration(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds(float(value))
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return _seconds(float(text))
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return _seconds(sum(float(n) * _UNITS_S[u] for n, u in parts))
        raise ValueError("not a duration (use e.g. 30s, 5m, 2h, 1d)")
    return value


def _seconds(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration must be finite and at most {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The short form ``parse_duration`` reads: 5400 s -> ``1h30m``."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    out = ""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_S[unit]
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{int(count)}{unit}"
    if seconds:
        out += f"{round(seconds * 1000)}ms"
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def check_glob(pattern: str) -> str:
    """A glob as ``fnmatch`` reads it; unbalanced brackets and empty patterns are refused."""
    if not pattern:
        raise ValueError("empty glob")
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise ValueError(f"bad glob {pattern!r}: nested '['")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad glob {pattern!r}: '[' without ']'")
    return pattern


def one_or_many(value: Any) -> Any:
    """A single string where a list is expected is a list of one (``to: a@example.com``)."""
    return [value] if isinstance(value, str) else value


def _check_globs(value: dict[str, list[str]]) -> dict[str, list[str]]:
    for globs in value.values():
        for glob in globs:
            check_glob(glob)
    return value


# ``label: glob`` or ``label: [glob, ...]``, as routes and inhibit rules match.
GlobsByLabel = Annotated[
    dict[str, Annotated[list[str], BeforeValidator(one_or_many)]], AfterValidator(_check_globs)
]


def check_http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http(s) URL")
    return value


def _secret_from_env(value: Any) -> Any:
    """``${NAME}`` reads the secret from environment variable NAME, so YAML can be shared."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str) and (found := re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", raw)):
        name = found.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    return value


Secret = Annotated[SecretStr, BeforeValidator(_secret_from_env)]


def clock_time(value: Any) -> Any:
    """``"07:30"`` -> 07:30; ``"24:00"`` -> the last instant of the day."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = value.strip().split(":")
        if hours == "24" and minutes == "00":
            return time(23, 59, 59, 999999)
        return time(int(hours), int(minutes))
    return value


def known_zone(value: str) -> str:
    """An IANA time zone name this machine knows (``Europe/Berlin``)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value
