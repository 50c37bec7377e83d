"""Endpoint suspensions of one developer app: a persistent 40100 pauses that endpoint.

Over its QPS limit TikTok throttles for a second; over QPM it suspends calls for 5 minutes,
answered as 40100 like any throttle (QPD: until 00:00 UTC). A client that backs off for seconds
would burn every retry inside a suspension, so throttling that persists is told apart by time:
an endpoint that has answered only throttles, with no success from any caller, for
``persistent_s`` (and at least three times) is suspended. It then pauses for ``pause_s``:
callers wait in ``admit`` instead of sending; when the pause ends one caller probes, the others
wait for its outcome; a throttled probe pauses the endpoint again at once, for twice as long
as before (up to ``MAX_PAUSE_GROWTH`` times ``pause_s``), a success ends the suspension for all.
The growth matters where the API counts refused calls against its limit too: probes of
several endpoints, each on a fixed pause, can by themselves keep an app over it for good.

Each pause is logged, counted (``creditwatch_api_suspensions_total``), shown by
``creditwatch_api_suspended{endpoint}`` (apps with the endpoint paused) and reported to
listeners (the poller writes it to Redis for ``/readyz``).

Usage::

    suspensions = budget.suspensions
    await suspensions.admit(endpoint)             # waits while the endpoint is paused
    pause = suspensions.throttled(endpoint, 40100)  # a Pause if the caller should wait
    suspensions.succeeded(endpoint)                # ends a suspension
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from workers.metrics import API_SUSPENDED, API_SUSPENSIONS

__all__ = ["MAX_PAUSE_GROWTH", "MIN_THROTTLES", "Pause", "PauseListener", "Suspensions"]

log = structlog.get_logger(__name__)

# A suspension answers every call; fewer throttles than this in a row are not evidence of one.
MIN_THROTTLES = 3
# A pause renewed again and again grows to at most this many times ``pause_s``.
MAX_PAUSE_GROWTH = 8


@dataclass(frozen=True, slots=True)
class Pause:
    """An endpoint paused: since and until when (UTC), and the code that caused it."""

    app: str
    endpoint: str
    since: datetime
    until: datetime
    code: int | None


# Called with (app, endpoint, the pause) when one starts or starts again, and with
# (app, endpoint, None) when it is over.
PauseListener = Callable[[str, str, Pause | None], None]


@dataclass
class _Paused:
    pause: Pause
    until: float  # monotonic
    length_s: float
    probing: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Let waiters look again (a probe ended, or the pause was renewed)."""
        self.settled.set()
        self.settled = asyncio.Event()


@dataclass(eq=False, slots=True)
class Suspensions:
    """Which endpoints of one app are paused, and the throttle streaks that lead there."""

    _: KW_ONLY
    pause_s: float
    persistent_s: float
    app: str = ""
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _paused: dict[str, _Paused] = field(default_factory=dict, init=False, repr=False)
    # endpoint -> (first throttle since the endpoint's last success, throttles since).
    _streaks: dict[str, tuple[float, int]] = field(default_factory=dict, init=False, repr=False)
    _listeners: list[PauseListener] = field(default_factory=list, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        """False with ``pause_s == 0``: throttles are then retried and given up on, as before."""
        return self.pause_s > 0

    def add_listener(self, listener: PauseListener) -> None:
        self._listeners.append(listener)

    def paused(self, endpoint: str) -> Pause | None:
        """The endpoint's pause while it lasts (not while its probe is out)."""
        entry = self._paused.get(endpoint)
        if entry is None or self.clock() >= entry.until:
            return None
        return entry.pause

    def active(self) -> list[Pause]:
        """Every pause in effect now."""
        return [p for p in (self.paused(e) for e in list(self._paused)) if p is not None]

    async def admit(self, endpoint: str) -> None:
        """Return when ``endpoint`` may be called: at once, or when its pause is over and
        this caller is the probe or the probe succeeded."""
        while True:
            entry = self._paused.get(endpoint)
            if entry is None:
                return
            left = entry.until - self.clock()
            if left > 0:
                await self.sleep(left)
                continue
            if not entry.probing:
                entry.probing = True
                return
            await entry.settled.wait()

    def throttled(self, endpoint: str, code: int | None) -> Pause | None:
        """Record a throttled reply; returns the endpoint's pause if the caller must wait it
        out (no retry spent), None if it should back off and retry as usual."""
        if not self.enabled:
            return None
        now = self.clock()
        entry = self._paused.get(endpoint)
        if entry is not None:
            if entry.probing or now >= entry.until:
                return self._pause(endpoint, code, now, renewed=True)  # still suspended
            return entry.pause  # sent before the pause began
        first, count = self._streaks.get(endpoint, (now, 0))
        count += 1
        self._streaks[endpoint] = (first, count)
        if count >= MIN_THROTTLES and now - first >= self.persistent_s:
            return self._pause(endpoint, code, now, renewed=False)
        return None

    def succeeded(self, endpoint: str) -> None:
        """A reply got through: the endpoint's streak and any suspension are over."""
        self._streaks.pop(endpoint, None)
        entry = self._paused.pop(endpoint, None)
        if entry is None:
            return
        API_SUSPENDED.labels(endpoint=endpoint).dec()
        log.info("api.resumed", endpoint=endpoint, app=self.app, since=entry.pause.since)
        entry.wake()
        self._tell(endpoint, None)

    def settle(self, endpoint: str) -> None:
        """An attempt ended neither throttled nor successful: let another caller probe."""
        entry = self._paused.get(endpoint)
        if entry is not None and entry.probing:
            entry.probing = False
            entry.wake()

    def _pause(self, endpoint: str, code: int | None, now: float, *, renewed: bool) -> Pause:
        wall = self.wall()
        previous = self._paused.get(endpoint)
        since = previous.pause.since if previous is not None else wall
        length_s = self.pause_s
        if previous is not None:
            length_s = min(previous.length_s * 2, self.pause_s * MAX_PAUSE_GROWTH)
        pause = Pause(
            app=self.app,
            endpoint=endpoint,
            since=since,
            until=wall + timedelta(seconds=length_s),
            code=code,
        )
        entry = _Paused(pause, until=now + length_s, length_s=length_s)
        self._paused[endpoint] = entry
        self._streaks.pop(endpoint, None)
        if previous is not None:
            previous.wake()
        else:
            API_SUSPENDED.labels(endpoint=endpoint).inc()
            API_SUSPENSIONS.labels(endpoint=endpoint).inc()
        log.warning(
            "api.suspended",
            endpoint=endpoint,
            app=self.app,
            code=code,
            until=pause.until,
            renewed=renewed,
        )
        self._tell(endpoint, pause)
        return pause

    def _tell(self, endpoint: str, pause: Pause | None) -> None:
        for listener in self._listeners:
            listener(self.app, endpoint, pause)
