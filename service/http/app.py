"""The service's HTTP app: status page, health, readiness, metrics, AsyncAPI, the ``/v1`` API.

``/`` and ``/accounts/{id}`` (the status page), ``/healthz``, ``/readyz`` and ``/asyncapi`` are
open; every ``/v1`` route, and ``/metrics`` unless ``api.metrics_public``, needs
``Authorization: Bearer <token>`` (``CREDITWATCH_API__TOKENS``), checked before the body is
read. Validation errors are 422 with the field named, never 500. Limits: bodies up to
``api.max_body_bytes`` (413 beyond), ``api.max_concurrency`` requests at once (503 with
Retry-After beyond; ``/healthz`` always answers), Redis out of reach or its pool busy: 503.
The OpenAPI document is at ``/openapi.json`` (``/docs`` renders it).

Usage::

    app = create_app(ApiContext(settings=settings, redis=redis, ...))
    async with AsgiServer(app, host=settings.api.host, port=settings.api.port): ...
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.fields import TIKTOK_ID_PATTERN
from config.settings import Settings
from service.detect.accounts import AccountsReader, AccountView
from service.detect.rule_failures import failing_rules
from service.http.admission import ConcurrencyLimit
from service.http.alert_history import AlertEpisode, alert_episodes
from service.http.auth import AuthFirst, BearerAuth
from service.http.delivery_routes import delivery_router
from service.http.errors import found, redis_unavailable, validation_failed
from service.http.ledger_routes import ledger_router
from service.http.silence_routes import silence_router
from service.http.status_routes import status_router
from service.http.stream_stats import StreamStats
from service.http.subscription_routes import subscription_router
from workers.poll_marks import PollMarks
from workers.suspension_marks import SuspensionMarks

__all__ = ["AlertEpisode", "ApiContext", "create_app"]

_STALE_INTERVALS = 3
_ALWAYS_SERVED = frozenset({"/healthz"})


@dataclass
class ApiContext:
    """What the HTTP app reads: settings, Redis, and probes into the running roles."""

    settings: Settings
    redis: Redis
    marks: PollMarks
    # (running, total) consumer subscribers of this process.
    consumers: Callable[[], tuple[int, int]]
    asyncapi: Callable[[], Any]
    started_at: float = field(default_factory=time.time)
    polled_sources: Callable[[], dict[str, float]] = field(default=lambda: {})
    # For the subscription test event (the service passes a url_guard.guarded_client);
    # None: a guarded client per test.
    http: httpx.AsyncClient | None = None


def _stopped_consumers(ctx: ApiContext) -> list[str]:
    running, total = ctx.consumers()
    return [f"consumers: {total - running} of {total} stopped"] if running < total else []


def create_app(ctx: ApiContext) -> FastAPI:
    api = ctx.settings.api
    app = FastAPI(
        title="creditwatch",
        version="0.1.0",
        description="Alerts for TikTok Ads promotional credits.",
        max_body_size=api.max_body_bytes,
    )
    auth = BearerAuth(api.tokens)
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(RedisError, redis_unavailable)
    # Added last, runs first: refuse the excess before anything else is spent on it.
    app.add_middleware(
        AuthFirst, auth=auth, guarded=_guarded_paths(public_metrics=api.metrics_public)
    )
    app.add_middleware(ConcurrencyLimit, limit=api.max_concurrency, exempt=_ALWAYS_SERVED)
    stats = StreamStats(ctx.redis, ctx.settings.streams, ctx.marks)
    suspensions = SuspensionMarks(ctx.redis, ctx.settings.streams)
    accounts = AccountsReader(ctx.redis, ctx.settings)

    app.include_router(status_router(accounts, ctx.redis, ctx.settings))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready, with reasons"}})
    async def readyz() -> JSONResponse:
        """Redis answers, consumers run, every configured poll is fresh, and no TikTok
        endpoint is suspended.

        A detection rule failing for some accounts is reported (``degraded``, still 200):
        the other rules and accounts work, and no restart or failover would fix it.
        """
        return await _readiness(ctx, suspensions)

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        dependencies=[] if api.metrics_public else [Depends(auth)],
    )
    async def metrics() -> Response:
        """Prometheus text format (a bearer token needed unless ``api.metrics_public``)."""
        # Without Redis the process counters are still worth serving.
        with contextlib.suppress(RedisError, OSError):
            await stats.refresh(datetime.now(UTC))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi", tags=["ops"])
    async def asyncapi() -> Any:
        """The AsyncAPI document of the streams (snapshots, alerts)."""
        return ctx.asyncapi()

    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Depends(auth)],
        responses={401: {"description": "a valid bearer token is required"}},
    )

    @v1.get("/accounts", tags=["accounts"])
    async def list_accounts() -> list[AccountView]:
        """Every advertiser the detectors track: balances, burn, exhaustion, live credits."""
        return await accounts.all()

    @v1.get(
        "/accounts/{advertiser_id}",
        tags=["accounts"],
        responses={404: {"description": "no such advertiser"}},
    )
    async def get_account(
        advertiser_id: str = Path(pattern=TIKTOK_ID_PATTERN),
    ) -> AccountView:
        return found(await accounts.get(advertiser_id), "advertiser")

    @v1.get("/alerts", tags=["alerts"])
    async def alerts(
        status: Literal["firing", "resolved"] | None = None,
        kind: str | None = Query(default=None, max_length=64),
        advertiser_id: str | None = Query(default=None, max_length=64),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[AlertEpisode]:
        """Alert episodes, newest first: active ones (firing) and history (resolved)."""
        episodes = await alert_episodes(ctx.redis, ctx.settings.streams)
        selected = [
            e
            for e in episodes
            if (status is None or e.status == status)
            and (kind is None or e.kind == kind)
            and (advertiser_id is None or e.advertiser_id == advertiser_id)
        ]
        return selected[:limit]

    v1.include_router(ledger_router(ctx.redis, ctx.settings))
    v1.include_router(silence_router(ctx.redis, ctx.settings))
    v1.include_router(subscription_router(ctx.redis, ctx.settings, ctx.http))
    v1.include_router(delivery_router(ctx.redis, ctx.settings))
    app.include_router(v1)
    return app


async def _readiness(ctx: ApiContext, suspensions: SuspensionMarks) -> JSONResponse:
    """The ``/readyz`` answer: 503 with reasons, degraded (200) with reasons, or ready."""
    now = time.time()
    reasons = _stopped_consumers(ctx)
    degraded: list[str] = []
    try:
        await ctx.redis.ping()
        reasons.extend(await _stale_polls(ctx, now))
        degraded = await failing_rules(ctx.redis, ctx.settings.streams)
        paused = await suspensions.current(datetime.fromtimestamp(now, UTC))
        reasons.extend(mark.describe() for mark in paused)
    except (RedisError, OSError) as error:
        reasons.append(f"redis: {type(error).__name__}")
    if reasons:
        body = {"status": "not ready", "reasons": reasons + degraded}
        return JSONResponse(body, status_code=503)
    if degraded:
        return JSONResponse({"status": "degraded", "reasons": degraded})
    return JSONResponse({"status": "ready"})


def _guarded_paths(*, public_metrics: bool) -> Callable[[str], bool]:
    """The paths that need a token: ``/v1`` and, unless public, ``/metrics``."""

    def guarded(path: str) -> bool:
        return (
            path == "/v1" or path.startswith("/v1/") or (path == "/metrics" and not public_metrics)
        )

    return guarded


async def _stale_polls(ctx: ApiContext, now: float) -> list[str]:
    """Configured polls whose last success is older than three intervals."""
    reasons: list[str] = []
    last = await ctx.marks.last()
    for source, interval in ctx.polled_sources().items():
        limit = _STALE_INTERVALS * interval
        for bc_id in ctx.settings.tiktok.configured_bc_ids():
            at = last.get((source, bc_id))
            if at is None:
                if now - ctx.started_at > limit:
                    reasons.append(f"poll {source}/{bc_id}: no successful poll yet")
            elif now - at > limit:
                reasons.append(f"poll {source}/{bc_id}: last success {now - at:.0f} s ago")
    return reasons
