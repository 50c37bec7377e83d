"""Fixtures for the notification end-to-end tests: a pipeline builder on the root ``clock``
and ``outbound`` fixtures, and a signed webhook endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from tests.support.notify import NotifyWith, pipeline
from tests.support.receiver import WebhookSink


@pytest.fixture
def notify_with(redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock) -> NotifyWith:
    """Builds the notification pipeline for the settings a test configured, on ``clock``."""

    def build(configured: Settings, *args: Any, **kwargs: Any) -> NotifyPipeline:
        return pipeline(configured, redis_client, outbound, clock, *args, **kwargs)

    return build


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    """A real HTTP server that verifies each signed webhook it is sent."""
    async with WebhookSink() as server:
        yield server
