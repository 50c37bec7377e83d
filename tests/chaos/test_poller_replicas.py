"""Two poller replicas share a business center; one is SIGKILLed: polling goes on within two
intervals, no tick is polled twice (fixed intervals: claimed per tick; continuous sweeps:
claimed whole, so the two never sweep at once and together keep the minimum gap), and the
alerts that follow arrive once each."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import Settings
from service.roles import service_role
from service.streams import read_entries
from tests.support.processes import replicas
from tests.support.receiver import WebhookSink
from tests.support.scenarios import scenario_text
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers.contract.snapshots import AccountBalanceSnapshot, parse_snapshot
from workers.sandbox import SandboxServer, parse_scenario

TOKEN = "chaos-poller-token-7f3a"
INTERVAL_S = 1.0
# 30 simulated minutes per second: the draining account runs low at ~16 s, out at ~20 s.
SCENARIO = scenario_text("poller_replicas", TOKEN=TOKEN)


async def balance_times(redis: Redis, stream: str, advertiser_id: str) -> list[float]:
    """When each balance snapshot of the advertiser was written (from the entry ids)."""
    times = []
    for entry_id, fields in await read_entries(redis, stream, count=100_000):
        snapshot = parse_snapshot(body(fields))
        if isinstance(snapshot, AccountBalanceSnapshot) and snapshot.advertiser_id == advertiser_id:
            times.append(int(entry_id.split(b"-")[0]) / 1000)
    return times


# (poll.balance_sweeps, the least time between two polls of the business center)
MODES = [("interval", INTERVAL_S), ("continuous", 0.5)]


@pytest.mark.parametrize(("sweeps", "spacing_s"), MODES)
async def test_polling_survives_a_killed_replica(
    settings: Settings, redis_client: Redis, tmp_path: Path, sweeps: str, spacing_s: float
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        env = {
            "CREDITWATCH_REDIS_URL": settings.redis_url or "",
            "CREDITWATCH_STREAMS__PREFIX": settings.streams.prefix,
            "CREDITWATCH_TIKTOK__BASE_URL": sandbox.base_url,
            "CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN,
            "CREDITWATCH_TIKTOK__BC_IDS": "7000000000009",
            "CREDITWATCH_POLL__BALANCE_INTERVAL_S": str(INTERVAL_S),
            "CREDITWATCH_POLL__BALANCE_SWEEPS": sweeps,
            "CREDITWATCH_POLL__BALANCE_MIN_GAP_S": str(min(spacing_s, INTERVAL_S / 2)),
            "CREDITWATCH_LOG_LEVEL": "info",
            # Each serves /metrics: replicas on one host need a port each (0: any free one).
            "CREDITWATCH_API__PORT": "0",
        }
        pollers = replicas("poller", env, tmp_path, "poller", 2)
        hook, route = sink.receiver_and_route("chaos", kinds=["credit.low", "credit.exhausted"])
        service = settings.model_copy(
            update={
                "notify": NotifySettings(
                    console=False,
                    # Delivery under chaos, not inhibition: whether a low that is flushed after the
                    # exhausted alert of its account fired goes out would depend on timing.
                    default_inhibit_rules=False,
                    receivers=[hook],
                    route=route,
                )
            }
        )
        stream = settings.streams.snapshots
        draining = "7190000000001"
        try:
            async with service_role(service, settings.redis_url or ""):

                async def polling() -> bool:
                    return len(await balance_times(redis_client, stream, draining)) >= 4

                await eventually(polling, within=30)
                both_polled = all(
                    p.process.poll() is None and "poller.listening" in p.output() for p in pollers
                )
                pollers[0].kill()
                # Entry ids carry Redis's clock, so the kill is timed on that clock too.
                seconds, micros = await redis_client.time()
                killed_at = seconds + micros / 1_000_000

                async def exhausted() -> bool:
                    return any(p["type"] == "credit.exhausted" for p in sink.payloads())

                await eventually(exhausted, within=40)
                await asyncio.sleep(2 * INTERVAL_S)
                times = await balance_times(redis_client, stream, draining)
        finally:
            survivor_code = pollers[1].stop()

    assert both_polled
    assert survivor_code == 0, pollers[1].output()[-2000:]
    after_kill = [t for t in times if t > killed_at]
    gaps = [b - a for a, b in zip([killed_at, *after_kill], after_kill, strict=False)]
    assert max(gaps) <= 2 * INTERVAL_S + 0.5, f"polling stalled: gaps {gaps}"
    # One poll per tick (or sweep) across both replicas: about one snapshot per spacing, not two.
    span = times[-1] - times[0]
    assert len(times) <= span / spacing_s + 2, f"{len(times)} polls in {span:.1f} s"
    transitions = Counter((p["type"], p["data"]["status"]) for p in sink.payloads())
    assert transitions == {("credit.low", "firing"): 1, ("credit.exhausted", "firing"): 1}
    assert {p["data"]["advertiser_id"] for p in sink.payloads()} == {draining}
    assert len(await entries(redis_client, settings.streams.deadletter)) == 0
