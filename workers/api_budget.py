"""The request budget of one TikTok developer app: per second, per minute and per day.

TikTok limits each developer app (and endpoint) by QPS, QPM and QPD and answers 40100 once it
goes over; going over the minute limit suspends calls for 5 minutes. So the service keeps under
its tier itself, on all three at once:

- per second and per minute, a sliding log of the last grants: the next grant is allowed at
  ``oldest + window + margin``, so no 1-second window ever holds more than ``floor(qps)`` grants
  and no 60-second window more than ``qpm`` (below 1 QPS grants are spaced ``1/qps`` apart);
- per day, a count that starts again at 00:00 UTC (when TikTok's daily quota does).

TikTok counts requests as they arrive, so a grant is stamped again when its request's headers
go on the wire (``on_the_wire``, which the transport calls from httpcore's trace hook): an
event loop that stalls between a grant and its send would otherwise let the late request
bunch with the next ones into one second.

Waiters are served by priority, then in arrival (FIFO) order: each waiter's claimant
(``workers.priorities``) is asked its rank when the next grant is free, so a long low-priority
sweep waits behind balances between any two of its requests. ``ApiBudget`` is one app's
budget (``tiktok.budget_share`` of the tier's, when other tools share the app): endpoints share
one ``RateBudget`` unless they have limits of their own, and ``suspensions`` pauses an endpoint
whose throttling persists (see ``workers.suspensions``). Share one ``ApiBudget`` between every
client (every connection) of an app: two budgets of 10 QPS make 20.

Usage::

    budget = ApiBudget.from_settings(settings.tiktok)     # one per developer app
    waited = await budget.acquire("/advertiser/balance/get/")   # seconds held back (0.0: none)
    budget.total_wait_s                                   # summed over all callers, for metrics
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from config.settings import TikTokSettings
from workers import priorities
from workers.priorities import Claimant
from workers.suspensions import Suspensions

__all__ = ["ApiBudget", "RateBudget", "RateLimits", "on_the_wire", "shared", "utc_now"]

_MINUTE_S = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per second, per minute (None: no limit) and per UTC day (None: none)."""

    qps: float
    qpm: int | None = None
    qpd: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.qps) and self.qps > 0):
            raise ValueError(f"qps must be a positive finite number, not {self.qps!r}")
        for name in ("qpm", "qpd"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")


def shared(limits: RateLimits, share: float) -> RateLimits:
    """``share`` (0 < share <= 1) of ``limits``: whole requests per minute and day, at least 1."""
    if share >= 1:
        return limits

    def part(limit: int | None) -> int | None:
        return None if limit is None else max(1, math.floor(limit * share))

    return RateLimits(qps=limits.qps * share, qpm=part(limits.qpm), qpd=part(limits.qpd))


class _Window:
    """A sliding log of the last ``limit`` grants in windows of ``span_s`` seconds."""

    def __init__(self, limit: int, span_s: float) -> None:
        self.limit = limit
        self.span_s = span_s
        # In time order: a grant stamped again on the wire may move past later grants.
        self._grants: list[float] = []

    def ready_at(self, margin_s: float) -> float:
        if len(self._grants) < self.limit:
            return -math.inf
        return self._grants[0] + self.span_s + margin_s

    def record(self, at: float) -> None:
        bisect.insort(self._grants, at)
        if len(self._grants) > self.limit:
            del self._grants[0]

    def move(self, stamp: float, to: float) -> None:
        """The grant stamped ``stamp`` is at ``to`` (later) instead. One that has already left
        the log for its age is older than all kept: it comes back at ``to``, the oldest goes."""
        index = bisect.bisect_left(self._grants, stamp)
        if index < len(self._grants) and self._grants[index] == stamp:
            del self._grants[index]
        self.record(to)


class _DayQuota:
    """Grants of the current UTC day; the count starts again at 00:00 UTC."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._day: date | None = None
        self._count = 0

    def wait_s(self, now: datetime) -> float:
        """Seconds until a grant is allowed: 0, or the time left to the next UTC midnight."""
        if now.date() != self._day or self._count < self.limit:
            return 0.0
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        return max((midnight - now).total_seconds(), 0.001)

    def record(self, now: datetime) -> None:
        if now.date() != self._day:
            self._day, self._count = now.date(), 0
        self._count += 1


# The current task's last grant, not yet on the wire: (its budget, its stamp).
_unsent: ContextVar[tuple[RateBudget, float] | None] = ContextVar("unsent_grant", default=None)


def on_the_wire() -> None:
    """The current task's last grant has just gone out as a request: stamp it now."""
    unsent = _unsent.get()
    if unsent is not None:
        _unsent.set(None)
        budget, stamp = unsent
        budget.restamp(stamp)


@dataclass(eq=False, slots=True)
class _Waiter:
    claimant: Claimant
    arrival: int
    turn: asyncio.Future[None]
    done: asyncio.Event


class RateBudget:
    """At most ``floor(qps)`` grants in any second, ``qpm`` in any minute, ``qpd`` a UTC day.

    ``clock`` (monotonic), ``wall`` (aware UTC time, for the day) and ``sleep`` are injectable
    so that tests run on fake time; ``sleep(d)`` must let at least ``d`` seconds of ``clock``
    pass. The instance belongs to one event loop (it holds an ``asyncio.Lock``).
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        margin_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be a non-negative finite number, not {margin_s!r}")
        self._limits = limits
        self._margin_s = float(margin_s)
        qps = limits.qps
        second = _Window(math.floor(qps), 1.0) if qps >= 1 else _Window(1, 1.0 / qps)
        self._second = second
        self._windows = [second]
        if limits.qpm is not None:
            self._windows.append(_Window(limits.qpm, _MINUTE_S))
        self._day = _DayQuota(limits.qpd) if limits.qpd is not None else None
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        # Who waits, in arrival order; one dispatcher task grants them while any wait.
        self._waiters: list[_Waiter] = []
        self._arrivals = 0
        self._dispatcher: asyncio.Task[None] | None = None
        # The waiter handed a grant that has not taken it yet: nobody else may meanwhile.
        self._handing: _Waiter | None = None
        self._total_wait_s = 0.0
        self._granted = 0

    @property
    def limits(self) -> RateLimits:
        return self._limits

    @property
    def qps(self) -> float:
        return self._limits.qps

    @property
    def burst(self) -> int:
        """How many grants one second may hold: ``floor(qps)``, or 1 below 1 QPS."""
        return self._second.limit

    @property
    def window_s(self) -> float:
        """The window the burst applies to: 1 s, or ``1/qps`` below 1 QPS (margin excluded)."""
        return self._second.span_s

    @property
    def total_wait_s(self) -> float:
        """Seconds callers have been held back, summed over all callers since creation."""
        return self._total_wait_s

    @property
    def granted(self) -> int:
        """How many acquisitions have been granted."""
        return self._granted

    def _wait_s(self, now: float) -> float:
        ready_at = max(window.ready_at(self._margin_s) for window in self._windows)
        wait = ready_at - now
        if self._day is not None:
            wait = max(wait, self._day.wait_s(self._wall()))
        return wait

    async def acquire(self, claimant: Claimant | None = None) -> float:
        """Wait for a grant; return the seconds this caller waited.

        ``claimant`` (default: the current task's, ``priorities.current()``) decides the
        order among waiters. Cancelling a waiter gives up its place without using a grant.
        """
        who = claimant if claimant is not None else priorities.current()
        start = self._clock()
        if not self._waiters and self._handing is None and self._wait_s(start) <= 0:
            self._record(start, who)
            return 0.0
        loop = asyncio.get_running_loop()
        waiter = _Waiter(who, self._arrivals, loop.create_future(), asyncio.Event())
        self._arrivals += 1
        self._waiters.append(waiter)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await waiter.turn
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            waiter.done.set()
            if not self._waiters and self._handing is None and self._dispatcher is not None:
                self._dispatcher.cancel()  # it would only wake to find nobody
            raise
        # The grant is taken here, at the moment this caller goes on to send its request.
        now = self._clock()
        self._record(now, who)
        waiter.done.set()
        waited = max(0.0, now - start)
        self._total_wait_s += waited
        return waited

    async def _dispatch(self) -> None:
        """Hand the next grant to the best-ranked waiter each time the windows allow one,
        until none wait; the waiter takes it before the next is handed out."""
        while self._waiters:
            now = self._clock()
            wait = self._wait_s(now)
            if wait > 0:
                # Loop rather than trust the sleep: it may wake early or round down.
                await self._sleep(wait)
                continue
            # Ranks are read now, not on arrival: a sweep's rank moves as it waits.
            best = min(self._waiters, key=lambda w: (w.claimant.rank(), w.arrival))
            self._waiters.remove(best)
            self._handing = best
            try:
                best.turn.set_result(None)
                await best.done.wait()
            finally:
                self._handing = None

    def _record(self, now: float, claimant: Claimant) -> None:
        for window in self._windows:
            window.record(now)
        if self._day is not None:
            self._day.record(self._wall())
        self._granted += 1
        claimant.granted()
        _unsent.set((self, now))

    def restamp(self, stamp: float) -> None:
        """The grant stamped ``stamp`` goes out now: the second and minute windows count it
        from now (the day's count is unchanged by when in the day it went)."""
        now = self._clock()
        if now > stamp:
            for window in self._windows:
                window.move(stamp, now)

    def __repr__(self) -> str:
        limits = self._limits
        return (
            f"RateBudget(qps={limits.qps:g}, qpm={limits.qpm}, qpd={limits.qpd}, "
            f"margin_s={self._margin_s:g}, granted={self._granted})"
        )


class ApiBudget:
    """One developer app's budget, shared by every client of that app.

    Endpoints in ``endpoint_limits`` have a ``RateBudget`` of their own; all others share one
    with ``limits``. ``suspensions`` pauses an endpoint whose throttling persists; ``acquire``
    waits out such a pause before it takes a grant.
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        endpoint_limits: Mapping[str, RateLimits] | None = None,
        suspension_s: float = 300.0,
        suspend_after_s: float = 5.0,
        app: str = "",
        margin_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        def budget(own: RateLimits) -> RateBudget:
            return RateBudget(own, margin_s=margin_s, clock=clock, wall=wall, sleep=sleep)

        self.app = app
        self._shared = budget(limits)
        self._own = {path: budget(own) for path, own in (endpoint_limits or {}).items()}
        self.suspensions = Suspensions(
            pause_s=suspension_s,
            persistent_s=suspend_after_s,
            app=app,
            clock=clock,
            wall=wall,
            sleep=sleep,
        )

    @classmethod
    def from_settings(cls, tiktok: TikTokSettings, *, app: str = "") -> ApiBudget:
        """The budget of the app ``tiktok`` describes (tier or explicit limits), cut to
        ``tiktok.budget_share`` of it."""
        share = tiktok.budget_share
        endpoint_limits = {
            path: shared(
                RateLimits(
                    qps=own.qps if own.qps is not None else tiktok.qps,
                    qpm=own.qpm if own.qpm is not None else tiktok.qpm,
                    qpd=own.qpd if own.qpd is not None else tiktok.qpd,
                ),
                share,
            )
            for path, own in tiktok.endpoint_limits.items()
        }
        return cls(
            shared(RateLimits(tiktok.qps, tiktok.qpm, tiktok.qpd), share),
            endpoint_limits=endpoint_limits,
            suspension_s=tiktok.suspension_s,
            suspend_after_s=tiktok.suspend_after_s,
            app=app,
            margin_s=tiktok.qps_margin_s,
        )

    @property
    def limits(self) -> RateLimits:
        """The limits endpoints share (those without limits of their own)."""
        return self._shared.limits

    @property
    def qps(self) -> float:
        return self._shared.qps

    def budget_for(self, endpoint: str) -> RateBudget:
        """The ``RateBudget`` this endpoint's requests take their grants from."""
        return self._own.get(endpoint, self._shared)

    @property
    def total_wait_s(self) -> float:
        return sum(b.total_wait_s for b in (self._shared, *self._own.values()))

    @property
    def granted(self) -> int:
        return sum(b.granted for b in (self._shared, *self._own.values()))

    async def acquire(self, endpoint: str) -> float:
        """Wait out a pause of ``endpoint``, then for a grant; returns the seconds waited for
        the grant (the pause excluded)."""
        await self.suspensions.admit(endpoint)
        try:
            return await self.budget_for(endpoint).acquire()
        except BaseException:
            self.suspensions.settle(endpoint)  # a probe that never went out
            raise

    def __repr__(self) -> str:
        own = ", ".join(f"{path}={budget!r}" for path, budget in self._own.items())
        return f"ApiBudget(app={self.app!r}, shared={self._shared!r}, own={{{own}}})"
