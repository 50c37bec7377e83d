"""When the next attempt of a failed delivery happens: the retry schedule with jitter.

Usage::

    wait = next_wait(settings.notify.retry, attempts_made=1, rng=random.Random())
    # timedelta(seconds=~5), or None once every attempt has been made
"""

from __future__ import annotations

import random
from datetime import timedelta

from config.notify import RetrySchedule

__all__ = ["honour_retry_after", "next_wait"]


def next_wait(
    schedule: RetrySchedule, *, attempts_made: int, rng: random.Random
) -> timedelta | None:
    """The wait after the ``attempts_made``-th attempt failed, or None if it was the last."""
    if attempts_made < 1 or attempts_made > len(schedule.delays):
        return None
    base = schedule.delays[attempts_made - 1].total_seconds()
    spread = rng.uniform(1 - schedule.jitter, 1 + schedule.jitter)
    return timedelta(seconds=base * spread)


def honour_retry_after(schedule: RetrySchedule, retry_after_s: float) -> timedelta:
    """What a receiver asked for, bounded: a day-long ``Retry-After`` must not park it forever."""
    # Clamped as seconds first: timedelta() itself overflows on a huge (or infinite) value.
    bounded = min(max(0.0, retry_after_s), schedule.max_retry_after.total_seconds())
    return timedelta(seconds=bounded)
