"""The service's HTTP app through an ASGI client, on a real Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from config.api import ApiSettings
from config.settings import Settings, TikTokSettings
from service.http.app import ApiContext, create_app
from tests.support.alert_stream import publish, transition
from workers.poll_marks import PollMarks

TOKEN = "api-token-for-tests-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Probe:
    def __init__(self) -> None:
        self.running = 4

    def __call__(self) -> tuple[int, int]:
        return self.running, 4


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api": ApiSettings(tokens=[SecretStr(TOKEN)]),
            "tiktok": TikTokSettings(bc_ids=["7001"]),
        }
    )


@pytest.fixture
async def client(
    api_settings: Settings, redis_client: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, Probe]]:
    probe = Probe()
    ctx = ApiContext(
        settings=api_settings,
        redis=redis_client,
        marks=PollMarks(redis_client, api_settings.streams),
        consumers=probe,
        asyncapi=lambda: {"asyncapi": "3.0.0"},
        polled_sources=lambda: {"advertiser_balance": 300.0},
        started_at=time.time() - 10_000,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://cw") as http:
        yield http, probe


async def test_v1_needs_a_valid_bearer_token(client: tuple[httpx.AsyncClient, Probe]) -> None:
    http, _ = client
    assert (await http.get("/v1/alerts")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert (await http.get("/v1/alerts", headers=wrong)).status_code == 401
    assert (await http.get("/v1/alerts", headers={"Authorization": TOKEN})).status_code == 401
    assert (await http.get("/v1/alerts", headers=AUTH)).status_code == 200
    assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_validation_errors_are_422_naming_the_field(
    client: tuple[httpx.AsyncClient, Probe],
) -> None:
    http, _ = client
    response = await http.get("/v1/alerts", params={"limit": 0}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]
    response = await http.get("/v1/alerts", params={"status": "sleeping"}, headers=AUTH)
    assert response.status_code == 422


async def test_alerts_lists_active_and_resolved_episodes(
    client: tuple[httpx.AsyncClient, Probe], api_settings: Settings
) -> None:
    http, _ = client
    await publish(
        api_settings,
        transition("71", "credit.low", "firing", 1),
        transition("72", "credit.low", "firing", 2),
        transition("71", "credit.low", "resolved", 3),
        transition("72", "credit.exhausted", "firing", 4),
    )
    everything = (await http.get("/v1/alerts", headers=AUTH)).json()
    assert [(e["advertiser_id"], e["kind"], e["status"]) for e in everything] == [
        ("72", "credit.exhausted", "firing"),
        ("71", "credit.low", "resolved"),
        ("72", "credit.low", "firing"),
    ]
    firing = (await http.get("/v1/alerts?status=firing&advertiser_id=72", headers=AUTH)).json()
    assert [e["kind"] for e in firing] == ["credit.exhausted", "credit.low"]
    assert firing[0]["values"] == {"valid_grant_balance": "1.50"}
    low = (await http.get("/v1/alerts?kind=credit.low&status=resolved", headers=AUTH)).json()
    assert [e["advertiser_id"] for e in low] == ["71"]
    assert low[0]["ends_at"] is not None


async def test_readiness_names_what_is_wrong(
    client: tuple[httpx.AsyncClient, Probe], api_settings: Settings, redis_client: Redis
) -> None:
    http, probe = client
    marks = PollMarks(redis_client, api_settings.streams)
    not_yet = await http.get("/readyz")
    assert not_yet.status_code == 503
    assert not_yet.json()["reasons"] == ["poll advertiser_balance/7001: no successful poll yet"]

    await marks.mark("advertiser_balance", "7001", at=datetime.now(UTC))
    assert (await http.get("/readyz")).status_code == 200

    await marks.mark("advertiser_balance", "7001", at=datetime.now(UTC) - timedelta(hours=1))
    probe.running = 3
    stale = await http.get("/readyz")
    assert stale.status_code == 503
    reasons = stale.json()["reasons"]
    assert reasons[0] == "consumers: 1 of 4 stopped"
    assert reasons[1].startswith("poll advertiser_balance/7001: last success 3600")


async def test_metrics_report_streams_and_data_age(
    client: tuple[httpx.AsyncClient, Probe], api_settings: Settings, redis_client: Redis
) -> None:
    http, _ = client
    await publish(api_settings, transition("71", "credit.low", "firing", 1))
    await redis_client.xgroup_create(api_settings.streams.alerts, "notifiers", id="0")
    await PollMarks(redis_client, api_settings.streams).mark(
        "advertiser_balance", "7001", at=datetime.now(UTC) - timedelta(seconds=42)
    )
    body = (await http.get("/metrics", headers=AUTH)).text
    assert 'creditwatch_stream_length{stream="alerts"} 1.0' in body
    assert 'creditwatch_consumer_group_lag{group="notifiers",stream="alerts"} 1.0' in body
    assert 'creditwatch_consumer_group_pending{group="notifiers",stream="alerts"} 0.0' in body
    age = next(
        line
        for line in body.splitlines()
        if line.startswith('creditwatch_data_age_seconds{bc_id="7001"')
    )
    assert 42 <= float(age.rsplit(" ", 1)[1]) < 60


async def test_data_age_is_never_negative(
    client: tuple[httpx.AsyncClient, Probe], api_settings: Settings, redis_client: Redis
) -> None:
    # A poll that lands while a scrape runs, or a poller clock a little ahead, is fresh data.
    http, _ = client
    await PollMarks(redis_client, api_settings.streams).mark(
        "advertiser_balance", "7001", at=datetime.now(UTC) + timedelta(seconds=5)
    )
    body = (await http.get("/metrics", headers=AUTH)).text
    assert 'creditwatch_data_age_seconds{bc_id="7001",source="advertiser_balance"} 0.0' in body
