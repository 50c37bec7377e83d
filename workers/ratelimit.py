"""The process-wide QPS budget: every TikTok API attempt takes one grant first.

TikTok publishes no QPS table and answers 40100 once an app goes over its tier, so the
service keeps under a configured ``qps`` itself. The budget is a sliding log of the last
``floor(qps)`` grants: the next grant is allowed at ``oldest + 1 s + margin``, so no 1-second
window ever holds more than ``floor(qps)`` grants. Below 1 QPS grants are spaced ``1/qps``
(plus the margin) apart. Waiters are served in arrival (FIFO) order.

Share one instance between every client of the process: two budgets of 10 QPS make 20.

Usage::

    budget = QpsBudget(settings.tiktok.qps)
    waited = await budget.acquire()     # seconds this caller was held back (0.0 if none)
    budget.total_wait_s                 # summed over all callers, for metrics
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["QpsBudget"]


class QpsBudget:
    """At most ``floor(qps)`` grants in any 1-second window, shared by all coroutines.

    ``clock`` and ``sleep`` are injectable so that tests run on fake time; ``clock`` must be
    monotonic and ``sleep(d)`` must let at least ``d`` seconds of ``clock`` pass.
    The instance belongs to one event loop (it holds an ``asyncio.Lock``).
    """

    def __init__(
        self,
        qps: float,
        *,
        margin_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(qps) and qps > 0):
            raise ValueError(f"qps must be a positive finite number, not {qps!r}")
        if not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be a non-negative finite number, not {margin_s!r}")
        self._qps = float(qps)
        self._margin_s = float(margin_s)
        if qps >= 1:
            self._burst = math.floor(qps)
            self._window_s = 1.0
        else:
            self._burst = 1
            self._window_s = 1.0 / qps
        self._clock = clock
        self._sleep = sleep
        # The last `burst` grant times, oldest first; the deque drops the oldest by itself.
        self._grants: deque[float] = deque(maxlen=self._burst)
        # asyncio.Lock hands itself over in FIFO order, and the holder sleeps while holding
        # it: later arrivals cannot overtake a waiter, and grant times are the real times.
        self._lock = asyncio.Lock()
        self._total_wait_s = 0.0
        self._granted = 0

    @property
    def qps(self) -> float:
        return self._qps

    @property
    def burst(self) -> int:
        """How many grants one window may hold: ``floor(qps)``, or 1 below 1 QPS."""
        return self._burst

    @property
    def window_s(self) -> float:
        """The window the burst applies to: 1 s, or ``1/qps`` below 1 QPS (margin excluded)."""
        return self._window_s

    @property
    def total_wait_s(self) -> float:
        """Seconds callers have been held back, summed over all callers since creation."""
        return self._total_wait_s

    @property
    def granted(self) -> int:
        """How many acquisitions have been granted."""
        return self._granted

    def _next_allowed(self) -> float:
        if len(self._grants) < self._burst:
            return -math.inf
        return self._grants[0] + self._window_s + self._margin_s

    async def acquire(self) -> float:
        """Wait for a grant; return the seconds this caller waited (lock queue included).

        Cancelling a waiter gives up its place without using a grant.
        """
        start = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                ready_at = self._next_allowed()
                if now >= ready_at:
                    break
                # Loop rather than trust the sleep: it may wake early or round down.
                await self._sleep(ready_at - now)
            self._grants.append(now)
            self._granted += 1
        waited = max(0.0, now - start)
        self._total_wait_s += waited
        return waited

    def __repr__(self) -> str:
        return (
            f"QpsBudget(qps={self._qps:g}, burst={self._burst}, window_s={self._window_s:g}, "
            f"margin_s={self._margin_s:g}, granted={self._granted})"
        )
