"""The service's HTTP API in process for tests: its bearer token, settings that enable it, and
an ASGI client on a real Redis (``app_client``; the ``http`` fixture in ``tests/conftest.py``
is one on the test's own settings)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis

from config.api import ApiSettings
from config.notify import NotifySettings
from config.settings import Settings
from service.http.app import ApiContext, create_app
from workers.poll_marks import PollMarks

TOKEN = "api-token-for-tests-0002"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_settings(settings: Settings, *, allow_private: bool = False, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "api": ApiSettings(tokens=[SecretStr(TOKEN)], port=0),
            "notify": NotifySettings(console=False, allow_private_urls=allow_private),
            **extra,
        }
    )


def app_client(settings: Settings, redis: Redis) -> httpx.AsyncClient:
    ctx = ApiContext(
        settings=settings,
        redis=redis,
        marks=PollMarks(redis, settings.streams),
        consumers=lambda: (2, 2),
        asyncapi=lambda: {},
        started_at=time.time(),
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://cw"
    )
