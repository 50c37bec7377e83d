"""Monotonic time the test moves: the one fake clock of the budget, suspension, claim and
sandbox tests.

``FakeMonotonic`` is called for the time; its ``sleep`` keeps what was asked (``slept``),
lets the other ready tasks run, then moves time on by that much, so that code waiting on
budgets and pauses runs in virtual time.

Usage::

    clock = FakeMonotonic(1000.0)
    budget = RateBudget(RateLimits(10), clock=clock, sleep=clock.sleep)
"""

from __future__ import annotations

import asyncio


class FakeMonotonic:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)
        self.now += seconds
