"""End to end on real parts: sandbox API → poller → Redis stream → detector → signed webhook.

Nothing is mocked: the sandbox is a real HTTP server, Redis is real, the receiver is a real
HTTP server that verifies every signature with the ``standardwebhooks`` library. The sandbox
clock is paused and advanced by the test, so the story is deterministic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import structlog
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from config.settings import (
    PollSettings,
    Settings,
)
from service.roles import poller_role
from tests.support.end_to_end import DRAINING, HEALTHY, HOUR, SCENARIO, TOKEN, admin, running, wired
from tests.support.receiver import SECRET, WebhookSink
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers import metrics
from workers.contract.snapshots import parse_snapshot
from workers.sandbox import SandboxServer, parse_scenario

BALANCE_KINDS = ("credit.low", "credit.exhausted")


async def test_low_then_exhausted_then_resolved_by_a_top_up(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink)
        with structlog.testing.capture_logs() as logs:
            async with running(settings):

                async def seen(count: int) -> bool:
                    return len(balance_alerts(sink)) >= count

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
                # Snapshots are stamped with the API's (paused) time: move it on a little, so
                # the balance after the top-up is newer than the one before it.
                await admin(sandbox, "/clock/advance", {"seconds": 1})
                await eventually(lambda: seen(4))

                # Several more polls of an unchanged world must not notify anything again.
                polls = await redis_client.xlen(settings.streams.snapshots)
                await eventually(
                    lambda: _more_entries(redis_client, settings.streams.snapshots, polls + 6)
                )

    every = sink.payloads()
    payloads = balance_alerts(sink)
    assert all(r.verified for r in sink.received), "every delivery carries a valid signature"
    assert {p["data"]["advertiser_id"] for p in every} == {DRAINING}, "the healthy one is quiet"
    assert [(p["type"], p["data"]["status"]) for p in payloads] == [
        ("credit.low", "firing"),
        ("credit.exhausted", "firing"),
        ("credit.low", "resolved"),
        ("credit.exhausted", "resolved"),
    ]
    assert {p["data"]["advertiser_id"] for p in payloads} == {DRAINING}
    by_alert = Counter(p["data"]["alert_id"] for p in payloads)
    assert sorted(by_alert.values()) == [2, 2], "one firing and one resolved per episode"
    assert len({r.headers["webhook-id"] for r in sink.received}) == len(sink.received)

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


def balance_alerts(sink: WebhookSink) -> list[dict[str, Any]]:
    """credit.low / credit.exhausted payloads (the forecast and cash rules fire here too)."""
    return [p for p in sink.payloads() if p["type"] in BALANCE_KINDS]


async def _more_entries(redis: Redis, stream: str, count: int) -> bool:
    return bool(await redis.xlen(stream) >= count)


async def test_a_revoked_token_fails_the_polls_and_raises_one_ops_alert(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink, token="revoked-token")
        sources = ("advertiser_balance", "bc_cost", "bc_transaction", "report", "bc_balance")
        failed = [metrics.POLLS.labels(source=s, outcome="auth_failed") for s in sources]
        before = [counter._value.get() for counter in failed]
        with structlog.testing.capture_logs() as logs:
            async with running(settings):
                await eventually(lambda: _counter_above(failed[0], before[0] + 1))
                await eventually(lambda: _sink_has(sink, 1))
        # Only source statuses were published: no data, since no poll got through.
        published = [
            parse_snapshot(body(f)) for f in await entries(redis_client, settings.streams.snapshots)
        ]
        assert published
        assert {(s.kind, getattr(s, "status", "")) for s in published} == {
            ("source_status", "auth_failed")
        }
        events = [e for e in logs if e["event"] == "poll.auth_failed"]
        assert events
        assert events[0]["code"] == 40105
        polls = sum(c._value.get() - b for c, b in zip(failed, before, strict=True))
        stats = sandbox.sandbox.stats.as_dict()
        assert set(stats["replies_by_code"]) == {"40105"}
        # No retry on a revoked token: one request per failed poll (some may be in flight).
        assert polls <= stats["replies_by_code"]["40105"] <= polls + len(sources)
        assert "revoked-token" not in repr(logs)
    [alert] = sink.payloads()
    assert alert["type"] == "source.auth_failed"
    assert alert["data"]["status"] == "firing"
    assert alert["data"]["bc_id"] == "7000000000001"
    assert alert["data"]["severity"] == "critical"


async def _sink_has(sink: WebhookSink, count: int) -> bool:
    return len(sink.payloads()) >= count


async def _counter_above(counter: Any, value: float) -> bool:
    return bool(counter._value.get() >= value)


async def test_throttled_polls_retry_and_complete(settings: Settings, redis_client: Redis) -> None:
    """The sandbox allows 3 requests a second; the client's budget of 6 is set too high, so
    the API answers 40100 and the client backs off and retries until the polls land."""
    tight = SCENARIO.replace("qps_limit: 20", "qps_limit: 3")
    async with SandboxServer(parse_scenario(tight)) as sandbox, WebhookSink() as sink:
        # Over the limit without pause: the sandbox counts refused calls too, so an endpoint
        # may see nothing but 40100 for seconds and pause; a short pause keeps the test brief.
        settings = wired(
            settings,
            sandbox,
            sink,
            qps=6,
            backoff_base_s=0.2,
            backoff_max_s=1.0,
            suspension_s=1.0,
        )
        settings = settings.model_copy(
            update={"poll": PollSettings(balance_interval_s=0.1, spend_lookback_days=1)}
        )
        async with running(settings):
            await eventually(
                lambda: _more_entries(redis_client, settings.streams.snapshots, 20), within=20
            )
        stats = sandbox.sandbox.stats.as_dict()
        assert stats["throttled"] > 0, stats


async def test_a_poller_on_its_own_serves_health_and_metrics(
    settings: Settings, redis_client: Redis
) -> None:
    """``creditwatch poller`` has no service app beside it: it serves its own /metrics."""
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink)
        urls: list[str] = []
        url = settings.redis_url or ""
        # Counters are per process: earlier tests may have published balances already.
        labels = {"kind": "account_balance"}
        before = REGISTRY.get_sample_value("creditwatch_snapshots_published_total", labels) or 0
        async with (
            poller_role(settings, url, serve_metrics=True, on_listening=urls.append),
            httpx.AsyncClient() as http,
        ):
            [root] = urls
            assert (await http.get(f"{root}/healthz")).text == "ok"

            async def balances_published() -> bool:
                text = (await http.get(f"{root}/metrics")).text
                return any(
                    sample.name == "creditwatch_snapshots_published_total"
                    and sample.labels == labels
                    and sample.value > before
                    for family in text_string_to_metric_families(text)
                    if family.name == "creditwatch_snapshots_published"
                    for sample in family.samples
                )

            await eventually(balances_published)
