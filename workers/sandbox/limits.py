"""The sandbox's rate limits: QPS, QPM and QPD per developer app and per endpoint, answered
as 40100 like TikTok's, with the QPM suspension (calls refused for a while after going over
the minute limit).

Scopes: with ``rate_limit_scope: app`` (the default) the scenario's ``qps_limit``,
``qpm_limit`` and ``qpd_limit`` count every request of an app, whatever the endpoint; with
``endpoint`` they count each (app, endpoint) apart, the other reading of "per app and per
endpoint". ``endpoint_limits`` give chosen endpoints windows of their own on top (their unset
figures are the app's). Every arrival counts, refused ones too, as the QPS window always did.

Scaling by ``--speed``: the 1-second and 60-second windows count real seconds, because what
they check is the client's real request pace, which no speed changes. What TikTok states in
its own time runs on the simulated clock: a suspension lasts ``suspension_s`` simulated
seconds (300 s at 3600x is 83 ms real; at speed 0 it lasts until the clock is advanced), and
the QPD day is the simulated UTC day, starting again at simulated 00:00 UTC.

Usage::

    limiter = RateLimiter.for_scenario(scenario)
    refusal = limiter.admit("app", "/bc/balance/get/", real=monotonic(), sim=clock.now())
    limiter.suspend("app", "/bc/balance/get/", until=clock.now() + timedelta(minutes=5))
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ALL_ENDPOINTS", "EndpointLimitSpec", "Limits", "RateLimiter", "Refusal"]

# The scope key of an app's limits over all its endpoints.
ALL_ENDPOINTS = "*"

Refusal = Literal["suspended", "qps", "qpm", "qpd"]


class EndpointLimitSpec(BaseModel):
    """An endpoint's own limits in a scenario; unset figures are the app's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    qps: int | None = Field(default=None, ge=1)
    qpm: int | None = Field(default=None, ge=1)
    qpd: int | None = Field(default=None, ge=1)


@dataclass(frozen=True, slots=True)
class Limits:
    """Arrivals allowed per real second, per real minute and per simulated UTC day."""

    qps: int | None = None
    qpm: int | None = None
    qpd: int | None = None

    def under(self, base: Limits) -> Limits:
        """These limits, with ``base``'s figure wherever one is unset."""
        return Limits(
            qps=self.qps if self.qps is not None else base.qps,
            qpm=self.qpm if self.qpm is not None else base.qpm,
            qpd=self.qpd if self.qpd is not None else base.qpd,
        )


@dataclass
class _Counts:
    """Arrivals of one scope: the last second and minute (real time), the simulated day."""

    second: deque[float] = field(default_factory=deque)
    minute: deque[float] = field(default_factory=deque)
    day: date | None = None
    today: int = 0

    def arrive(self, real: float, sim: datetime) -> None:
        for window, span in ((self.second, 1.0), (self.minute, 60.0)):
            while window and window[0] <= real - span:
                window.popleft()
            window.append(real)
        if sim.date() != self.day:
            self.day, self.today = sim.date(), 0
        self.today += 1

    def over(self, limits: Limits) -> Refusal | None:
        if limits.qps is not None and len(self.second) > limits.qps:
            return "qps"
        if limits.qpm is not None and len(self.minute) > limits.qpm:
            return "qpm"
        if limits.qpd is not None and self.today > limits.qpd:
            return "qpd"
        return None


class RateLimiter:
    """Admits or refuses each request of an app to an endpoint."""

    def __init__(
        self,
        app: Limits,
        *,
        endpoints: Mapping[str, Limits] | None = None,
        scope: Literal["app", "endpoint"] = "app",
        suspension: timedelta = timedelta(minutes=5),
    ) -> None:
        self._app = app
        self._endpoints = {path: own.under(app) for path, own in (endpoints or {}).items()}
        self._scope = scope
        self._suspension = suspension
        self._counts: dict[tuple[str, str], _Counts] = {}
        # (app, endpoint or ALL_ENDPOINTS) -> simulated time the suspension ends.
        self._suspended: dict[tuple[str, str], datetime] = {}
        # Suspensions set in advance: (app, endpoint or ALL_ENDPOINTS, start, end).
        self._scheduled: list[tuple[str, str, datetime, datetime]] = []

    def _scopes(self, app: str, path: str) -> list[tuple[tuple[str, str], Limits]]:
        if self._scope == "endpoint":
            return [((app, path), self._endpoints.get(path, self._app))]
        scopes = [((app, ALL_ENDPOINTS), self._app)]
        if path in self._endpoints:
            scopes.append(((app, path), self._endpoints[path]))
        return scopes

    def admit(self, app: str, path: str, *, real: float, sim: datetime) -> Refusal | None:
        """Count one arrival; None if it is admitted, else why it is refused. Going over a
        minute limit suspends that scope for the suspension time."""
        refusal: Refusal | None = None
        for key, limits in self._scopes(app, path):
            counts = self._counts.setdefault(key, _Counts())
            counts.arrive(real, sim)
            over = counts.over(limits)
            if over == "qpm" and self._suspension > timedelta(0):
                self._suspended[key] = sim + self._suspension
            refusal = refusal or over
        if self.suspended_until(app, path, sim) is not None:
            return "suspended"
        return refusal

    def suspended_until(self, app: str, path: str, sim: datetime) -> datetime | None:
        """When the suspension of this app's endpoint (or of the whole app) ends, if it is on."""
        keys = ((app, ALL_ENDPOINTS), (app, path))
        ends = [until for key in keys if (until := self._suspended.get(key)) is not None]
        ends += [end for a, p, start, end in self._scheduled if (a, p) in keys and start <= sim]
        return max((end for end in ends if end > sim), default=None)

    def suspend(
        self, app: str, path: str | None, until: datetime, *, start: datetime | None = None
    ) -> None:
        """Suspend one endpoint of an app (every endpoint with ``path`` None) until then;
        from ``start`` on if given, else now."""
        if start is None:
            self._suspended[(app, path or ALL_ENDPOINTS)] = until
        else:
            self._scheduled.append((app, path or ALL_ENDPOINTS, start, until))

    @property
    def suspension(self) -> timedelta:
        return self._suspension

    def suspensions(self, sim: datetime) -> dict[str, datetime]:
        """Suspensions in effect, as ``app endpoint`` -> end (for the admin state)."""
        now = {f"{a} {p}": until for (a, p), until in self._suspended.items() if until > sim}
        for a, p, start, end in self._scheduled:
            if start <= sim < end:
                now[f"{a} {p}"] = max(end, now.get(f"{a} {p}", end))
        return now
