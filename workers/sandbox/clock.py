"""Simulated time for the sandbox: real time scaled by a speed, plus manual jumps.

At ``speed=3600`` one real second is one simulated hour, so a demo shows days of credit burn in
a minute; at ``speed=0`` time stands still until ``advance`` moves it, which makes tests exact.

Usage::

    clock = SimClock(datetime(2026, 11, 1, tzinfo=UTC), speed=3600)
    clock.advance(1800)          # jump half an hour, paused or not
    clock.now()                  # an aware datetime
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """A monotonic simulated clock; ``monotonic`` is injectable so tests need not sleep."""

    def __init__(
        self,
        start: datetime,
        speed: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        _check_speed(speed)
        self._monotonic = monotonic
        self._speed = speed
        # now() = sim anchor + (real elapsed since real anchor) * speed
        self._sim_anchor = start
        self._real_anchor = monotonic()

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now(self) -> datetime:
        """The current simulated time."""
        elapsed = self._monotonic() - self._real_anchor
        return self._sim_anchor + timedelta(seconds=elapsed * self._speed)

    def advance(self, seconds: float) -> datetime:
        """Jump forward by ``seconds`` of simulated time; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._reanchor()
        self._sim_anchor += timedelta(seconds=seconds)
        return self._sim_anchor

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on; time already elapsed keeps the old speed."""
        _check_speed(speed)
        self._reanchor()
        self._speed = speed

    def _reanchor(self) -> None:
        real = self._monotonic()
        self._sim_anchor += timedelta(seconds=(real - self._real_anchor) * self._speed)
        self._real_anchor = real


def _check_speed(speed: float) -> None:
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError("speed must be a finite number >= 0")
