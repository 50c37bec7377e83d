"""End to end on real parts: sandbox API → poller → Redis stream → detector → signed webhook.

Nothing is mocked: the sandbox is a real HTTP server, Redis is real, the receiver is a real
HTTP server that verifies every signature with the ``standardwebhooks`` library. The sandbox
clock is paused and advanced by the test, so the story is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from redis.asyncio import Redis

from config.settings import (
    NotifySettings,
    PollSettings,
    Settings,
    TikTokSettings,
    WebhookSubscriber,
)
from service.roles import poller_role, service_role
from tests.receiver import SECRET, WebhookSink
from tests.waiting import eventually
from workers import metrics
from workers.sandbox import SandboxServer, parse_scenario

TOKEN = "e2e-token-5b0c6a1f9d"
DRAINING = "7100000000001"
HEALTHY = "7100000000002"
HOUR = 3600

SCENARIO = f"""
start: 2026-11-01T00:00:00Z
speed: 0
access_token: {TOKEN}
qps_limit: 20
business_centers:
  - bc_id: "7000000000001"
    name: E2E Agency
    currency: USD
    advertisers:
      - advertiser_id: "{DRAINING}"
        name: Draining Shop
        cash_balance: "500.00"
        grant_balance: "100.00"
        burn_rate_per_hour: "10.00"
      - advertiser_id: "{HEALTHY}"
        name: Healthy Store
        cash_balance: "500.00"
        grant_balance: "1000.00"
        burn_rate_per_hour: "1.00"
"""


def wired(settings: Settings, sandbox: SandboxServer, sink: WebhookSink, **tiktok: Any) -> Settings:
    return settings.model_copy(
        update={
            "tiktok": TikTokSettings(
                base_url=sandbox.base_url,
                access_token=SecretStr(tiktok.pop("token", TOKEN)),
                bc_ids=["7000000000001"],
                **tiktok,
            ),
            "poll": PollSettings(balance_interval_s=0.2),
            "notify": NotifySettings(
                console=False,
                webhooks=[WebhookSubscriber(name="e2e", url=sink.url, secret=SecretStr(SECRET))],
            ),
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[None]:
    url = settings.redis_url or ""
    async with service_role(settings, url), poller_role(settings, url):
        yield


async def admin(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sandbox.admin_url}{path}", json=body)
        response.raise_for_status()


async def test_low_then_exhausted_then_resolved_by_a_top_up(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink)
        with structlog.testing.capture_logs() as logs:
            async with running(settings):

                async def seen(count: int) -> bool:
                    return len(sink.payloads()) >= count

                async def both_tracked() -> bool:
                    keys = [settings.streams.key("state", a) for a in (DRAINING, HEALTHY)]
                    return bool(await redis_client.exists(*keys) == 2)

                await eventually(both_tracked)
                assert sink.payloads() == []

                await admin(sandbox, "/clock/advance", {"seconds": 8.5 * HOUR})  # 15.00 left
                await eventually(lambda: seen(1))
                await admin(sandbox, "/clock/advance", {"seconds": 2 * HOUR})  # used up
                await eventually(lambda: seen(2))
                await admin(
                    sandbox,
                    "/events",
                    {"advertiser_id": DRAINING, "action": "grant_topup", "amount": "500.00"},
                )
                await eventually(lambda: seen(4))

                # Several more polls of an unchanged world must not notify anything again.
                polls = await redis_client.xlen(settings.streams.snapshots)
                await eventually(
                    lambda: _more_entries(redis_client, settings.streams.snapshots, polls + 6)
                )

    payloads = sink.payloads()
    assert all(r.verified for r in sink.received), "every delivery carries a valid signature"
    assert [(p["type"], p["data"]["status"]) for p in payloads] == [
        ("credit.low", "firing"),
        ("credit.exhausted", "firing"),
        ("credit.low", "resolved"),
        ("credit.exhausted", "resolved"),
    ]
    assert {p["data"]["advertiser_id"] for p in payloads} == {DRAINING}
    by_alert = Counter(p["data"]["alert_id"] for p in payloads)
    assert sorted(by_alert.values()) == [2, 2], "one firing and one resolved per episode"
    assert len({r.headers["webhook-id"] for r in sink.received}) == 4

    low_firing = payloads[0]["data"]
    assert low_firing["values"]["valid_grant_balance"] == "15.00"
    assert low_firing["values"]["low_threshold"] == "20.00"
    assert low_firing["currency"] == "USD"
    assert low_firing["advertiser_name"] == "Draining Shop"
    assert low_firing["ends_at"] is None
    assert payloads[1]["data"]["values"]["valid_grant_balance"] == "0.00"
    assert payloads[3]["data"]["values"]["valid_grant_balance"] == "500.00"
    assert payloads[3]["data"]["ends_at"] is not None

    logged = repr(logs)
    assert TOKEN not in logged
    assert SECRET not in logged


async def _more_entries(redis: Redis, stream: str, count: int) -> bool:
    return bool(await redis.xlen(stream) >= count)


async def test_a_revoked_token_fails_the_poll_without_publishing(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink, token="revoked-token")
        failed = metrics.POLLS.labels(source="advertiser_balance", outcome="auth_failed")
        before = failed._value.get()
        with structlog.testing.capture_logs() as logs:
            async with running(settings):
                await eventually(lambda: _counter_above(failed, before + 1))
        assert await redis_client.xlen(settings.streams.snapshots) == 0
        events = [e for e in logs if e["event"] == "poll.auth_failed"]
        assert events
        assert events[0]["code"] == 40105
        polls = failed._value.get() - before
        stats = sandbox.sandbox.stats.as_dict()
        assert set(stats["replies_by_code"]) == {"40105"}
        # No retry on a revoked token: one request per failed poll (one may be in flight).
        assert polls <= stats["replies_by_code"]["40105"] <= polls + 1
        assert "revoked-token" not in repr(logs)
        assert sink.received == []


async def _counter_above(counter: Any, value: float) -> bool:
    return bool(counter._value.get() >= value)


async def test_throttled_polls_retry_and_complete(settings: Settings, redis_client: Redis) -> None:
    """The sandbox allows 3 requests a second; the client's budget of 6 is set too high, so
    the API answers 40100 and the client backs off and retries until the polls land."""
    tight = SCENARIO.replace("qps_limit: 20", "qps_limit: 3")
    async with SandboxServer(parse_scenario(tight)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink, qps=6, backoff_base_s=0.2, backoff_max_s=1.0)
        settings = settings.model_copy(update={"poll": PollSettings(balance_interval_s=0.1)})
        async with running(settings):
            await eventually(
                lambda: _more_entries(redis_client, settings.streams.snapshots, 20), within=20
            )
        stats = sandbox.sandbox.stats.as_dict()
        assert stats["throttled"] > 0, stats
