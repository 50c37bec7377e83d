"""Fixtures for the notification end-to-end tests: a fake clock, a plain outbound HTTP
client (the receivers are local servers), and a pipeline builder on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from tests.support.notify import T0, NotifyWith, pipeline


@pytest.fixture
def clock() -> FakeClock:
    """The clock the pipeline runs on, at ``T0``: tests move it to the next retry by hand."""
    return FakeClock(T0)


@pytest.fixture
async def outbound() -> AsyncIterator[httpx.AsyncClient]:
    """What the pipeline sends to receivers with (the root ``http`` is a client of our API)."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def notify_with(redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock) -> NotifyWith:
    """Builds the notification pipeline for the settings a test configured, on ``clock``."""

    def build(configured: Settings, *args: Any, **kwargs: Any) -> NotifyPipeline:
        return pipeline(configured, redis_client, outbound, clock, *args, **kwargs)

    return build
