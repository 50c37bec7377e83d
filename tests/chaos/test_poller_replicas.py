"""Two poller replicas share a business center; one is SIGKILLed: polling goes on within two
intervals, no tick is polled twice, and the alerts that follow arrive once each."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import Settings
from service.roles import service_role
from service.streams import read_entries
from tests.chaos.processes import Role
from tests.receiver import WebhookSink
from tests.streams import body, entries
from tests.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario
from workers.snapshots import AccountBalanceSnapshot, parse_snapshot

TOKEN = "chaos-poller-token-7f3a"
INTERVAL_S = 1.0
# 30 simulated minutes per second: the draining account runs low at ~16 s, out at ~20 s.
SCENARIO = f"""
start: 2026-11-01T00:00:00Z
speed: 1800
access_token: {TOKEN}
qps_limit: 50
business_centers:
  - bc_id: "7000000000009"
    name: Chaos Agency
    currency: USD
    advertisers:
      - advertiser_id: "7190000000001"
        name: Draining Shop
        cash_balance: "500.00"
        grant_balance: "100.00"
        burn_rate_per_hour: "10.00"
      - advertiser_id: "7190000000002"
        name: Healthy Store
        cash_balance: "500.00"
        grant_balance: "5000.00"
        burn_rate_per_hour: "1.00"
"""


async def balance_times(redis: Redis, stream: str, advertiser_id: str) -> list[float]:
    """When each balance snapshot of the advertiser was written (from the entry ids)."""
    times = []
    for entry_id, fields in await read_entries(redis, stream, count=100_000):
        snapshot = parse_snapshot(body(fields))
        if isinstance(snapshot, AccountBalanceSnapshot) and snapshot.advertiser_id == advertiser_id:
            times.append(int(entry_id.split(b"-")[0]) / 1000)
    return times


async def test_polling_survives_a_killed_replica(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        env = {
            "CREDITWATCH_REDIS_URL": settings.redis_url or "",
            "CREDITWATCH_STREAMS__PREFIX": settings.streams.prefix,
            "CREDITWATCH_TIKTOK__BASE_URL": sandbox.base_url,
            "CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN,
            "CREDITWATCH_TIKTOK__BC_IDS": "7000000000009",
            "CREDITWATCH_POLL__BALANCE_INTERVAL_S": str(INTERVAL_S),
            "CREDITWATCH_LOG_LEVEL": "info",
            # Each serves /metrics: replicas on one host need a port each (0: any free one).
            "CREDITWATCH_API__PORT": "0",
        }
        pollers = [
            Role(
                "poller",
                {**env, "CREDITWATCH_STREAMS__CONSUMER": f"poller-{n}"},
                tmp_path / f"poller-{n}.log",
            )
            for n in range(2)
        ]
        service = settings.model_copy(
            update={
                "notify": NotifySettings(
                    console=False,
                    webhooks=[sink.subscriber("chaos", kinds=["credit.low", "credit.exhausted"])],
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
                killed_at = time.time()

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
    # One poll per tick across both replicas: about one snapshot per interval, not two.
    span = times[-1] - times[0]
    assert len(times) <= span / INTERVAL_S + 2, f"{len(times)} polls in {span:.1f} s"
    transitions = Counter((p["type"], p["data"]["status"]) for p in sink.payloads())
    assert transitions == {("credit.low", "firing"): 1, ("credit.exhausted", "firing"): 1}
    assert {p["data"]["advertiser_id"] for p in sink.payloads()} == {draining}
    assert len(await entries(redis_client, settings.streams.deadletter)) == 0
