"""Fixtures for the notification end-to-end tests: a pipeline builder on the root ``clock``
and ``outbound`` fixtures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from tests.support.notify import NotifyWith, pipeline


@pytest.fixture
def notify_with(redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock) -> NotifyWith:
    """Builds the notification pipeline for the settings a test configured, on ``clock``."""

    def build(configured: Settings, *args: Any, **kwargs: Any) -> NotifyPipeline:
        return pipeline(configured, redis_client, outbound, clock, *args, **kwargs)

    return build
