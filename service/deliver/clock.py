"""The clock seam: everything in delivery that depends on time asks a ``Clock``.

Production passes ``utc_now``; tests pass a ``FakeClock`` they move by hand, so grouping,
repeats, quiet hours and retry schedules are tested without sleeping.

Usage::

    clock: Clock = utc_now
    due = clock() + timedelta(seconds=5)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "FakeClock", "from_epoch", "to_epoch", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_epoch(when: datetime) -> float:
    """Redis sorted sets keep times as epoch seconds."""
    return when.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class FakeClock:
    """A clock that stands still until ``advance`` moves it (for tests and simulations)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware start")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> datetime:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.now
