"""A cap on the requests the HTTP app serves at once: beyond it, 503 with ``Retry-After``.

Without it a burst of cheap unauthenticated requests (``GET /``) queues without bound on
Redis and memory; with it the excess is told to come back, at once and cheaply. Exempt paths
(``/healthz``, the liveness probe) are always served: they touch nothing.

Usage::

    app.add_middleware(ConcurrencyLimit, limit=64, exempt=frozenset({"/healthz"}))
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service import metrics
from service.http.errors import unavailable

__all__ = ["ConcurrencyLimit"]


class ConcurrencyLimit:
    """ASGI middleware counting requests in flight (one event loop: a plain counter)."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: frozenset[str]) -> None:
        self.app = app
        self._limit = limit
        self._exempt = exempt
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self._limit:
            metrics.HTTP_REFUSED.labels(reason="saturated").inc()
            await unavailable("busy: too many requests at once, retry later")(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
