"""End to end on a real Redis Cluster: sandbox API -> poller -> sharded streams -> detectors ->
signed webhook, with ``streams.shards: 3`` over three masters and three replicas.

The cluster is six ``redis-server --cluster-enabled yes`` processes the test starts on loopback
(``tests.support.redis_cluster``); creditwatch reaches it through a ``redis+cluster://`` URL, so the
detector's transaction (states, their versions and the shard's alerts stream) has to stay in
one slot, or the cluster refuses it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from config.api import ApiSettings
from config.keyspace import Keyspace
from config.settings import (
    DetectSettings,
    NotifySettings,
    Settings,
    StreamSettings,
)
from service.roles import poller_role, service_role
from tests.support.end_to_end import sandbox_api
from tests.support.polls import polls_every
from tests.support.receiver import WebhookSink
from tests.support.redis_cluster import RedisCluster, cluster_tools_missing
from tests.support.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario

pytestmark = pytest.mark.skipif(cluster_tools_missing() is not None, reason="no redis-server")

TOKEN = "cluster-e2e-token-3c9d1e"
API_TOKEN = "cluster-api-token-8e2f70"
BC = "7300000000001"
HOUR = 3600
SHARDS = 3
PREFIX = "cwcluster"
BALANCE_KINDS = ("credit.low", "credit.exhausted")


def one_per_shard(space: Keyspace, first: int) -> list[str]:
    """Advertiser ids, one landing in each shard (found, not assumed: the hash decides)."""
    chosen: dict[int, str] = {}
    candidate = first
    while len(chosen) < space.shards:
        chosen.setdefault(space.shard_of(str(candidate)), str(candidate))
        candidate += 1
    return [chosen[shard] for shard in range(space.shards)]


SPACE = Keyspace(PREFIX, SHARDS)
DRAINING = one_per_shard(SPACE, 7300000000100)
HEALTHY = one_per_shard(SPACE, 7300000000200)


def scenario() -> str:
    rows = [(a, "100.00", "10.00") for a in DRAINING] + [(a, "1000.00", "1.00") for a in HEALTHY]
    advertisers = "".join(
        f"""
      - advertiser_id: "{advertiser}"
        name: Shop {advertiser[-3:]}
        cash_balance: "500.00"
        grant_balance: "{grant}"
        burn_rate_per_hour: "{burn}"
"""
        for advertiser, grant, burn in rows
    )
    return f"""
start: 2026-11-01T00:00:00Z
speed: 0
access_token: {TOKEN}
qps_limit: 20
business_centers:
  - bc_id: "{BC}"
    name: Cluster Agency
    currency: USD
    advertisers:{advertisers}"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@asynccontextmanager
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    client = ClusterClient(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster.ports])
    try:
        yield client
    finally:
        await client.aclose()


def wired(cluster: RedisCluster, sandbox: SandboxServer, sink: WebhookSink, tmp: Path) -> Settings:
    hook, route = sink.receiver_and_route("cluster", kinds=list(BALANCE_KINDS))
    return Settings(
        redis_url=cluster.url,
        data_dir=tmp,
        api=ApiSettings(port=0, tokens=[SecretStr(API_TOKEN)]),
        streams=StreamSettings(
            prefix=PREFIX, shards=SHARDS, consumer="cluster-1", reclaim_idle_ms=1000
        ),
        tiktok=sandbox_api(sandbox.base_url, TOKEN, [BC]),
        poll=polls_every(balance_s=0.3, spend_s=0.5, report_s=1.0, bc_balance_s=1.0),
        detect=DetectSettings(stale_intervals=200),
        notify=NotifySettings(
            console=False,
            default_inhibit_rules=False,
            receivers=[hook],
            route=route,
        ),
    )


async def admin(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sandbox.admin_url}{path}", json=body)
        response.raise_for_status()


def test_the_shards_spread_over_the_masters_by_hash_tag() -> None:
    """Every key of a shard shares its slot; the three shards' slots differ."""
    slots = []
    for shard, advertiser in enumerate(DRAINING):
        keys = [
            SPACE.state_key("state", advertiser),
            SPACE.versions_key("state", shard),
            SPACE.alert_stream(shard),
            SPACE.snapshot_stream(shard),
        ]
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys
        slots.append(key_slot(keys[0].encode()))
    assert len(set(slots)) == SHARDS


async def test_polls_to_signed_webhooks_across_three_shards_of_a_cluster(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    async with (
        SandboxServer(parse_scenario(scenario())) as sandbox,
        WebhookSink() as sink,
        cluster_client(cluster) as redis,
    ):
        settings = wired(cluster, sandbox, sink, tmp_path)

        def alerts() -> list[dict[str, Any]]:
            return [p for p in sink.payloads() if p["type"] in BALANCE_KINDS]

        async def tracked() -> bool:
            keys = [SPACE.state_key("state", a) for a in DRAINING + HEALTHY]
            return all([await redis.exists(k) for k in keys])

        async def seen(count: int) -> bool:
            return len(alerts()) >= count

        url = settings.redis_url or ""
        urls: list[str] = []
        async with (
            service_role(settings, url, on_listening=urls.append),
            poller_role(settings, url),
        ):
            await eventually(tracked, within=60)
            assert alerts() == []
            await admin(sandbox, "/clock/advance", {"seconds": 8.5 * HOUR})  # 15.00 left
            await eventually(lambda: seen(SHARDS), within=60)
            await admin(sandbox, "/clock/advance", {"seconds": 2 * HOUR})  # used up
            await eventually(lambda: seen(2 * SHARDS), within=60)
            # More polls of an unchanged world notify nothing again.
            lengths = [await redis.xlen(s) for s in SPACE.snapshot_streams()]
            await eventually(
                lambda: _grown(redis, SPACE.snapshot_streams(), [n + 6 for n in lengths]),
                within=60,
            )
            # The HTTP surface reads every shard: states by SCAN over all masters, one MGET
            # per slot, versions per shard, the alerts streams of all shards.
            accounts, firing = await _api(urls[0], "/v1/accounts", "/v1/alerts?status=firing")
            # The status list reads the rows the detectors keep beside each shard's versions.
            rows = {
                shard: await redis.hkeys(SPACE.shard_key(shard, "state-rows"))
                for shard in range(SHARDS)
            }
            async with httpx.AsyncClient() as http:
                page = await http.get(f"{urls[0]}/?q=")
        per_shard_alerts = [await redis.xlen(s) for s in SPACE.alert_streams()]
        masters = {cluster.master_of(s) for s in SPACE.snapshot_streams()}

    payloads = alerts()
    assert all(r.verified for r in sink.received), "every delivery carries a valid signature"
    assert Counter((p["data"]["advertiser_id"], p["type"]) for p in payloads) == {
        (advertiser, kind): 1 for advertiser in DRAINING for kind in BALANCE_KINDS
    }, "each draining account: one low, one exhausted; the healthy ones quiet"
    assert all(p["data"]["status"] == "firing" for p in payloads)
    assert len({r.headers["webhook-id"] for r in sink.received}) == len(sink.received)
    # Each shard's transitions went to its own alerts stream.
    assert all(n >= 2 for n in per_shard_alerts), per_shard_alerts
    assert len(masters) == SHARDS, "three shards on a fresh three-master cluster: one each"
    assert sorted(a["advertiser_id"] for a in accounts) == sorted(DRAINING + HEALTHY)
    assert {
        (shard, advertiser.decode() if isinstance(advertiser, bytes) else advertiser)
        for shard, ids in rows.items()
        for advertiser in ids
    } == {(SPACE.shard_of(a), a) for a in DRAINING + HEALTHY}
    assert page.status_code == 200
    assert all(advertiser in page.text for advertiser in DRAINING + HEALTHY)
    assert {(e["advertiser_id"], e["kind"]) for e in firing if e["kind"] in BALANCE_KINDS} == {
        (advertiser, kind) for advertiser in DRAINING for kind in BALANCE_KINDS
    }


async def _api(base: str, *paths: str) -> list[Any]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_TOKEN}"}) as http:
        answers = [await http.get(f"{base}{path}") for path in paths]
    for answer in answers:
        answer.raise_for_status()
    return [answer.json() for answer in answers]


async def _grown(redis: ClusterClient, streams: list[str], at_least: list[int]) -> bool:
    return all([await redis.xlen(s) >= n for s, n in zip(streams, at_least, strict=True)])
