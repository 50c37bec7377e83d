"""The Redis client a WATCH/MULTI transaction runs on: the server, or in a Cluster the master
that owns the keys' slot.

redis-py 8's cluster pipeline refuses MGET and MSET inside a transaction and runs every command
issued between WATCH and MULTI on a thread of its own with a fresh event loop; the transactions
here read and write many keys of one slot (hash-tagged, see ``config.keyspace``). So on a
Cluster they run on a plain client of the slot's master instead, the very code that runs on a
standalone Redis. After a failover or a slot move the master answers MOVED (or is gone): the
slot map is refreshed and the error raised, so the caller's retry (a stream entry left pending
and reclaimed) lands on the new master.

Usage::

    async with transaction(redis, key) as pipe:     # MULTI/EXEC on the slot's master
        await pipe.watch(key)
        ...
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError, TimeoutError

__all__ = [
    "close_owners",
    "is_cluster",
    "owning",
    "read_keys",
    "refresh_on_moved",
    "slot_owner",
    "transaction",
]

# One plain client per master of each cluster client, reused across transactions.
_MASTERS: weakref.WeakKeyDictionary[RedisCluster, dict[tuple[str, int], Redis]] = (
    weakref.WeakKeyDictionary()
)


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)


async def slot_owner(redis: Redis, key: str) -> Redis:
    """``redis`` itself, or on a Cluster a client of the master owning ``key``'s slot."""
    if not isinstance(redis, RedisCluster):
        return redis
    cluster = cast("RedisCluster", redis)
    if cluster._initialize:  # not connected yet: the slot map is read on first use
        await cluster.initialize()
    node = cluster.get_node_from_key(key)
    if node is None:
        raise RedisConnectionError(f"no master owns the slot of {key}")
    clients = _MASTERS.setdefault(cluster, {})
    address = (node.host, node.port)
    if address not in clients:
        options = node.connection_kwargs
        clients[address] = Redis(
            host=node.host,
            port=node.port,
            password=options.get("password"),
            username=options.get("username"),
            ssl=issubclass(node.connection_class, SSLConnection),
            socket_timeout=options.get("socket_timeout"),
            max_connections=node.max_connections,
        )
    return clients[address]


async def refresh_on_moved(redis: Redis, error: Exception) -> None:
    """Re-read the slot map when ``error`` says a slot's master changed; the caller re-raises."""
    moved = isinstance(error, ResponseError) and str(error).startswith(("MOVED", "ASK"))
    if isinstance(redis, RedisCluster) and (
        moved or isinstance(error, RedisConnectionError | TimeoutError | OSError)
    ):
        await cast("RedisCluster", redis).nodes_manager.initialize()


@asynccontextmanager
async def owning(redis: Redis, key: str) -> AsyncIterator[Redis]:
    """The client owning ``key``'s slot (``slot_owner``), for commands whose keys all share
    that slot. When they fail because the slot moved or its master is gone, the slot map is
    re-read before the error goes on to the caller."""
    client = await slot_owner(redis, key)
    try:
        yield client
    except (ResponseError, RedisConnectionError, TimeoutError, OSError) as error:
        await refresh_on_moved(redis, error)
        raise


@asynccontextmanager
async def transaction(redis: Redis, key: str) -> AsyncIterator[Pipeline]:
    """A MULTI/EXEC pipeline on the client owning ``key``'s slot (every key it touches must
    share that slot: the ``{g}`` family, or one shard's), as ``owning`` gives it."""
    async with owning(redis, key) as client, client.pipeline(transaction=True) as pipe:
        yield pipe


async def read_keys(redis: Redis, keys: Sequence[str | bytes]) -> list[Any]:
    """GET of many keys in one round trip: MGET, or on a Cluster one MGET per slot (keys of
    different shards live in different slots, which a single MGET refuses)."""
    if isinstance(redis, RedisCluster):
        return await cast("RedisCluster", redis).mget_nonatomic(list(keys))
    return list(await redis.mget(keys))


async def close_owners(redis: Redis) -> None:
    """Close the masters' clients ``slot_owner`` made for ``redis`` (a Cluster's); call it
    when closing ``redis`` itself."""
    if isinstance(redis, RedisCluster):
        for client in _MASTERS.pop(cast("RedisCluster", redis), {}).values():
            await client.aclose()
