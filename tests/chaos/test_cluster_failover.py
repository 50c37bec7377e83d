"""A Redis Cluster master is SIGKILLed mid-stream and its replica promoted: the service carries
on by itself, and every expected transition is delivered, each under one webhook-id.

Six real cluster nodes (three masters, three replicas, AOF with ``appendfsync always``) started
by the test; ``streams.shards: 3``, one shard per master; snapshots for 30 advertisers spread
over the shards. After the first polls (every low fired) the master owning shard 1 and the
delivery side's ``{g}`` slot is killed while the remaining polls are being published; the
cluster promotes its replica (``cluster-node-timeout 1000``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import RedisError

from config.api import ApiSettings
from config.notify import NotifySettings
from config.settings import Settings, StreamSettings
from service.roles import service_role
from tests.support.deliveries import assert_each_transition_once
from tests.support.receiver import WebhookSink
from tests.support.redis_cluster import RedisCluster, cluster_tools_missing
from tests.support.snapshots import grant_snapshot
from tests.support.waiting import eventually
from workers.contract.envelope import stream_entry
from workers.contract.snapshots import AccountBalanceSnapshot

pytestmark = pytest.mark.skipif(cluster_tools_missing() is not None, reason="no redis-server")

ADVERTISERS = 30
SHARDS = 3
GRANTS = ["1000", "800", "600", "400", "200", "100", "0", "0", "1500", "1400"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)
KILLED_AFTER_POLL = 6


def snapshot(advertiser: int, poll: int) -> AccountBalanceSnapshot:
    advertiser_id = str(830_000 + advertiser)
    return grant_snapshot("7001", advertiser_id, GRANTS[poll], T0 + timedelta(minutes=poll))


async def publish_poll(redis: ClusterClient, streams: StreamSettings, poll: int) -> None:
    """One poll's snapshots onto their shards' streams, each retried while its slot has no
    master (as the poller's next tick would; a repeated snapshot is the same fact)."""
    space = streams.keyspace
    for advertiser in range(ADVERTISERS):
        shot = snapshot(advertiser, poll)
        stream = space.snapshot_stream(space.shard_of(shot.advertiser_id))
        entry = await stream_entry(shot.to_json(), shot.snapshot_id)
        for _ in range(300):
            try:
                await redis.xadd(stream, entry, maxlen=streams.maxlen, approximate=True)
                break
            except (RedisError, OSError):
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no master took {stream} within 30 s")


async def test_a_killed_master_is_replaced_and_every_transition_arrives_once(
    tmp_path: Path,
) -> None:
    with RedisCluster(tmp_path / "cluster", appendonly=True) as cluster:
        async with WebhookSink() as sink:
            streams = StreamSettings(
                prefix="cwfailover",
                shards=SHARDS,
                consumer="svc",
                reclaim_idle_ms=1000,
                wait_replicas=1,  # the joins of an acknowledged entry survive the failover
            )
            hook, route = sink.receiver_and_route("chaos", kinds=["credit.low", "credit.exhausted"])
            settings = Settings(
                redis_url=cluster.url,
                data_dir=tmp_path,
                api=ApiSettings(port=0),
                streams=streams,
                notify=NotifySettings(
                    console=False,
                    default_inhibit_rules=False,  # delivery under chaos, not inhibition timing
                    delivery_lease=timedelta(seconds=3),
                    receivers=[hook],
                    route=route,
                ),
            )
            nodes = [ClusterNode("127.0.0.1", port) for port in cluster.ports]
            publisher = ClusterClient(startup_nodes=nodes)

            async def delivered(count: int) -> bool:
                return len({r.headers["webhook-id"] for r in sink.received}) >= count

            try:
                async with service_role(settings, cluster.url):
                    for poll in range(KILLED_AFTER_POLL):
                        await publish_poll(publisher, streams, poll)
                    await eventually(lambda: delivered(ADVERTISERS), within=60)  # every low

                    # Shard 1's master also holds the {g} slot (deliveries, groups): the
                    # kill hits a detector shard and the delivery side at once.
                    shard_one = streams.keyspace.snapshot_stream(1)
                    killed = cluster.master_of(shard_one)
                    assert cluster.master_of(streams.key("deliveries", "due")) == killed
                    rest = asyncio.create_task(_publish_rest(publisher, streams))
                    await asyncio.sleep(0.05)  # the next poll is on its way
                    assert not rest.done(), "the kill must land mid-stream"
                    cluster.kill(killed)
                    # Waited for off the event loop: the service keeps running meanwhile.
                    promoted = await asyncio.to_thread(cluster.wait_promoted, killed, shard_one)
                    await rest
                    try:
                        await eventually(lambda: delivered(4 * ADVERTISERS), within=90, every=0.5)
                    except AssertionError:
                        seen = Counter((p["type"], p["data"]["status"]) for p in sink.payloads())
                        raise AssertionError(f"delivered so far: {dict(seen)}") from None
                    await asyncio.sleep(2)  # room for a duplicate to show up, if one would
            finally:
                await publisher.aclose()

    assert promoted != killed
    # One webhook-id per transition; a send retried (its record lost with the master) keeps it.
    assert_each_transition_once(sink, ADVERTISERS)


async def _publish_rest(publisher: ClusterClient, streams: StreamSettings) -> None:
    for poll in range(KILLED_AFTER_POLL, len(GRANTS)):
        await publish_poll(publisher, streams, poll)
        await asyncio.sleep(0.2)
