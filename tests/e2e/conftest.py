"""Fixtures for the notification end-to-end tests: a fake clock, and a pipeline builder on
it and the root ``outbound`` HTTP client."""

from __future__ import annotations

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
def notify_with(redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock) -> NotifyWith:
    """Builds the notification pipeline for the settings a test configured, on ``clock``."""

    def build(configured: Settings, *args: Any, **kwargs: Any) -> NotifyPipeline:
        return pipeline(configured, redis_client, outbound, clock, *args, **kwargs)

    return build
