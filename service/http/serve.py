"""Serving the HTTP app from the service role: its context, from the role's own parts.

``api_context`` must run before the broker starts: it declares the two streams on the
service's broker, so FastStream's AsyncAPI document describes them. ``serve_api`` listens
on ``settings.api.host``/``port`` while the role runs (nothing when ``api.enabled`` is off).

Usage::

    ctx = api_context(settings, redis, broker, subscribers, http, polled_sources=intervals)
    await broker.start()
    async with serve_api(ctx, on_listening=print): ...
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings
from service.http.app import ApiContext, create_app
from service.http.asyncapi import asyncapi_document, declare_streams
from workers.http_server import listening
from workers.poll_marks import PollMarks

__all__ = ["api_context", "serve_api"]


def api_context(
    settings: Settings,
    redis: Redis,
    broker: RedisBroker,
    subscribers: Sequence[Any],
    http: httpx.AsyncClient,
    *,
    polled_sources: Mapping[str, float],
) -> ApiContext:
    """The app's context; declares the streams on ``broker`` (call before it starts).

    ``polled_sources``: each poll source's interval by name (the poller's registry, handed
    in by the role that composes both).
    """
    declare_streams(broker, settings.streams)
    intervals = dict(polled_sources)

    def consumers() -> tuple[int, int]:
        return sum(1 for s in subscribers if s.running), len(subscribers)

    return ApiContext(
        settings=settings,
        redis=redis,
        marks=PollMarks(redis, settings.streams),
        consumers=consumers,
        # The document only changes with the code: build it on first request, once.
        asyncapi=functools.cache(lambda: asyncapi_document(broker)),
        polled_sources=lambda: intervals,
        http=http,
    )


@asynccontextmanager
async def serve_api(
    ctx: ApiContext, *, on_listening: Callable[[str], None] | None = None
) -> AsyncIterator[str | None]:
    """The app on ``api.host``:``api.port`` until exit; yields its URL (None if disabled)."""
    api = ctx.settings.api
    if not api.enabled:
        yield None
        return
    app = create_app(ctx)
    async with listening(
        app,
        host=api.host,
        port=api.port,
        name="api",
        on_listening=on_listening,
        header_timeout_s=api.header_timeout_s,
    ) as url:
        yield url
