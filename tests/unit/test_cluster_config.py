"""Redis Cluster settings: the ``redis+cluster://`` URL, the clients it builds, and the rules
that tie it to ``streams.shards``."""

from __future__ import annotations

import logging

import pytest
from faststream.redis.broker.cluster_broker import RedisClusterBroker
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster

from config.settings import Settings, SettingsError, StreamSettings
from service.connections import RedisTarget


def test_a_cluster_url_names_its_nodes_and_password() -> None:
    target = RedisTarget.parse("redis+cluster://:s%40cret@n1:7000,n2:7001,n3")
    assert target.kind == "cluster"
    assert target.nodes == [("n1", 7000), ("n2", 7001), ("n3", 6379)]
    assert target.password == "s@cret"
    assert not target.tls
    assert RedisTarget.parse("rediss+cluster://n1:7000").tls


async def test_a_cluster_url_builds_a_cluster_client_and_broker() -> None:
    target = RedisTarget.parse("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001")
    client = target.client()
    assert isinstance(client, RedisCluster)
    await client.aclose()
    broker = target.broker(logger=logging.getLogger("test"))
    assert isinstance(broker, RedisClusterBroker)


def test_a_cluster_needs_hash_tagged_shards() -> None:
    with pytest.raises(SettingsError, match=r"CREDITWATCH_STREAMS__SHARDS .*at least 2"):
        Settings(redis_url="redis+cluster://n1:7000")
    settings = Settings(redis_url="redis+cluster://n1:7000", streams=StreamSettings(shards=3))
    assert settings.streams.keyspace.tagged


@pytest.mark.parametrize("shards", [0, -1, 1025])
def test_shards_out_of_range_are_refused(shards: int) -> None:
    with pytest.raises(ValidationError, match="shards"):
        StreamSettings(shards=shards)


def test_a_braced_prefix_cannot_take_shard_tags() -> None:
    """A tag in the prefix would win over the shard's (Redis hashes the first ``{…}``)."""
    with pytest.raises(ValidationError, match="prefix without braces"):
        StreamSettings(prefix="{cw}", shards=2)
    assert StreamSettings(prefix="{cw}", shards=1).snapshots == "{cw}:snapshots"
