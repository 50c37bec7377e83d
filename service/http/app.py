"""The service's HTTP app: status page, health, readiness, metrics, AsyncAPI, the ``/v1`` API.

``/`` (the status page), ``/healthz``, ``/readyz``, ``/metrics`` and ``/asyncapi`` are open;
every ``/v1`` route needs ``Authorization: Bearer <token>`` (``CREDITWATCH_API__TOKENS``).
Validation errors are 422 with the field named, never 500. The OpenAPI document is at
``/openapi.json`` (``/docs`` renders it).

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
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import Settings
from service.http.accounts import AccountsReader, AccountView
from service.http.alert_history import AlertEpisode, alert_episodes
from service.http.auth import BearerAuth
from service.http.errors import not_found
from service.http.ledger_routes import ledger_router
from service.http.silence_routes import silence_router
from service.http.status_page import render_status_page
from service.http.stream_stats import StreamStats
from service.http.subscription_routes import subscription_router
from workers.poll_marks import PollMarks

__all__ = ["AlertEpisode", "ApiContext", "create_app"]

_STALE_INTERVALS = 3


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
    # For the subscription test event; None: a client per test.
    http: httpx.AsyncClient | None = None


def _stopped_consumers(ctx: ApiContext) -> list[str]:
    running, total = ctx.consumers()
    return [f"consumers: {total - running} of {total} stopped"] if running < total else []


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="creditwatch",
        version="0.1.0",
        description="Alerts for TikTok Ads promotional credits.",
    )
    stats = StreamStats(ctx.redis, ctx.settings.streams, ctx.marks)
    accounts = AccountsReader(ctx.redis, ctx.settings)

    @app.get("/", tags=["status page"], response_class=HTMLResponse)
    async def status_page() -> HTMLResponse:
        """Where each advertiser's credit stands: balances, burn-down, expiry, ladders, alerts."""
        return HTMLResponse(await render_status_page(accounts, ctx.redis, ctx.settings.streams))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready, with reasons"}})
    async def readyz() -> JSONResponse:
        """Redis answers, consumers run, and every configured poll is fresh."""
        now = time.time()
        reasons = _stopped_consumers(ctx)
        try:
            await ctx.redis.ping()
            reasons.extend(await _stale_polls(ctx, now))
        except (RedisError, OSError) as error:
            reasons.append(f"redis: {type(error).__name__}")
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
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
        dependencies=[Depends(BearerAuth(ctx.settings.api.tokens))],
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
        advertiser_id: str = Path(pattern=r"^[0-9A-Za-z_-]{1,64}$"),
    ) -> AccountView:
        view = await accounts.get(advertiser_id)
        if view is None:
            raise not_found("advertiser")
        return view

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
    app.include_router(v1)
    return app


async def _stale_polls(ctx: ApiContext, now: float) -> list[str]:
    """Configured polls whose last success is older than three intervals."""
    reasons: list[str] = []
    last = await ctx.marks.last()
    for source, interval in ctx.polled_sources().items():
        limit = _STALE_INTERVALS * interval
        for bc_id in ctx.settings.tiktok.bc_ids:
            at = last.get((source, bc_id))
            if at is None:
                if now - ctx.started_at > limit:
                    reasons.append(f"poll {source}/{bc_id}: no successful poll yet")
            elif now - at > limit:
                reasons.append(f"poll {source}/{bc_id}: last success {now - at:.0f} s ago")
    return reasons
