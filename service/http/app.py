"""The service's HTTP app: health, readiness, metrics, AsyncAPI and the ``/v1`` API.

``/healthz``, ``/readyz``, ``/metrics`` and ``/asyncapi`` are open; every ``/v1`` route needs
``Authorization: Bearer <token>`` (``CREDITWATCH_API__TOKENS``). Validation errors are 422
with the field named, never 500.

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

from fastapi import APIRouter, Depends, FastAPI, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import Settings
from service.alerts import AlertTransition, parse_transition
from service.http.auth import BearerAuth
from service.http.stream_stats import StreamStats
from service.streams import payload_of, read_entries
from workers.poll_marks import PollMarks

__all__ = ["AlertEpisode", "ApiContext", "create_app"]

# How far back /v1/alerts reads the alerts stream (which is trimmed anyway).
_HISTORY_ENTRIES = 10_000
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


class AlertEpisode(BaseModel):
    """One alert episode as the API shows it: the latest of its transitions."""

    alert_id: str
    kind: str
    status: Literal["firing", "resolved"]
    severity: str
    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str
    summary: str
    values: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    observed_at: datetime

    @classmethod
    def of(cls, transition: AlertTransition) -> AlertEpisode:
        return cls.model_validate(transition.model_dump(exclude={"schema_version"}))


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

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(BearerAuth(ctx.settings.api.tokens))])

    @v1.get("/alerts", tags=["alerts"])
    async def alerts(
        status: Literal["firing", "resolved"] | None = None,
        kind: str | None = Query(default=None, max_length=64),
        advertiser_id: str | None = Query(default=None, max_length=64),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[AlertEpisode]:
        """Alert episodes, newest first: active ones (firing) and history (resolved)."""
        episodes = await _episodes(ctx)
        selected = [
            e
            for e in episodes
            if (status is None or e.status == status)
            and (kind is None or e.kind == kind)
            and (advertiser_id is None or e.advertiser_id == advertiser_id)
        ]
        return selected[:limit]

    app.include_router(v1)
    return app


async def _episodes(ctx: ApiContext) -> list[AlertEpisode]:
    """The latest transition of every episode on the alerts stream, newest first."""
    rows = await read_entries(
        ctx.redis, ctx.settings.streams.alerts, count=_HISTORY_ENTRIES, newest_first=True
    )
    latest: dict[str, AlertEpisode] = {}
    for _, fields in rows:
        try:
            transition = parse_transition(payload_of(fields))
        except ValueError:
            continue  # malformed entries are the notifiers' to dead-letter, not ours
        latest.setdefault(transition.alert_id, AlertEpisode.of(transition))
    return sorted(latest.values(), key=lambda e: e.observed_at, reverse=True)


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
