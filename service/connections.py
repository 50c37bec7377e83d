"""Redis connections from one URL, for redis-py and FastStream alike: standalone, Sentinel or
Cluster.

``CREDITWATCH_REDIS_URL`` takes either form:

- ``redis://[:password@]host:6379/0``, ``rediss://…``, ``unix:///path/redis.sock``: one server.
- ``redis+sentinel://[:password@]host1:26379,host2:26379/mymaster[/db]``: the master that the
  sentinels name ``mymaster``; clients re-discover it after a failover.
- ``redis+cluster://[:password@]host1:7000,host2:7001`` (``rediss+cluster://`` for TLS): a Redis
  Cluster, from any of its nodes (the rest are discovered). redis-py's ``RedisCluster`` and
  FastStream's ``RedisClusterBroker``; keys must then be hash-tagged by shard
  (``streams.shards`` >= 2, see ``config.keyspace``).

Every client has a bounded, blocking pool of its own: a caller waits for a free connection
(up to ``timeout_s``) instead of failing, and one surface cannot take another's connections.
The service role keeps the HTTP app on a pool apart from the pipeline's (detectors,
notifiers, sender), so a flood of requests cannot starve the background work. Standalone and
Sentinel connections pack commands with hiredis, in C, as redis-py's own sync connections do
(its asyncio ones pack every argument in Python: a detector batch's commit took 1.95 ms to
pack, 0.37 ms so); the bytes are the same.

Usage::

    target = RedisTarget.parse(settings.redis_url)
    redis = target.client()                                  # the pipeline's pool
    api_redis = target.client(max_connections=16, timeout_s=2)  # the HTTP app's
    broker = target.broker(logger=logging.getLogger("faststream"))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import quote, unquote, urlsplit

from faststream.redis import RedisBroker
from faststream.redis.broker.cluster_broker import RedisClusterBroker
from faststream.redis.broker.sentinel_broker import RedisSentinelBroker
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.connection import HiredisRespSerializer
from redis.typing import EncodableT
from redis.utils import HIREDIS_AVAILABLE

if HIREDIS_AVAILABLE:
    from hiredis import pack_command

__all__ = [
    "CLUSTER_SCHEMES",
    "PIPELINE_CONNECTIONS",
    "POOL_TIMEOUT_S",
    "SENTINEL_SCHEME",
    "RedisTarget",
    "connect",
    "packed_in_c",
]

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_DEFAULT_REDIS_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
# The pipeline's tasks (detector batches, notifier, sender attempts, flusher, staleness
# watch) share redis-py's usual 100 connections, but wait for one (up to POOL_TIMEOUT_S)
# rather than fail a round with MaxConnectionsError.
PIPELINE_CONNECTIONS = 100
POOL_TIMEOUT_S = 30.0


# redis-py annotates the serializer's arguments as lists; they are a command's arguments.
# Its constructors (this one's, Sentinel's) are typed in some releases of the range
# pyproject.toml allows and not in others: called through Any, mypy passes on each.
_SERIALIZER: Any = HiredisRespSerializer
_SENTINEL: Any = Sentinel
_PACK_IN_C: Callable[..., list[bytes]] = _SERIALIZER().pack


class _PackedInC(AbstractConnection):
    """Packs commands with ``hiredis.pack_command`` (redis-py's serializer for its sync
    connections): the same bytes as the Python packer, the same ``DataError`` for a value
    that cannot be sent, for UTF-8 text (the encoding ``packed_in_c`` checks)."""

    __slots__ = ()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        # The usual command (a one-word name; text, bytes and numbers) goes to hiredis as
        # it is: redis-py's serializer first looks at every argument twice in Python, a
        # microsecond per state in a detector's commit of 500. What hiredis refuses (a
        # bytearray, a bool, None) and a name of two words go through that serializer,
        # which converts or refuses them as redis-py does.
        name = args[0]
        if isinstance(name, str) and " " not in name:
            try:
                # hiredis's stub types the argument as a tuple of one item.
                return [pack_command(cast("Any", args))]
            except TypeError:
                pass
        return _PACK_IN_C(*args)


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def packed_in_c(
    connection_class: type[AbstractConnection], options: dict[str, Any]
) -> type[AbstractConnection]:
    """``connection_class`` packing in C where that gives the same bytes: hiredis installed,
    and text encoded as UTF-8, strictly (redis-py's default, which ``options`` may change)."""
    utf8 = options.get("encoding", "utf-8") == "utf-8"
    if not HIREDIS_AVAILABLE or not utf8 or options.get("encoding_errors", "strict") != "strict":
        return connection_class
    if connection_class not in _PACKED:
        name = f"{connection_class.__name__}PackedInC"
        _PACKED[connection_class] = type(name, (_PackedInC, connection_class), {"__slots__": ()})
    return _PACKED[connection_class]


class _BlockingSentinelPool(BlockingConnectionPool, SentinelConnectionPool):
    """A Sentinel-managed pool that waits for a free connection, like the standalone one."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", packed_in_c(SentinelManagedConnection, kwargs))
        super().__init__(service_name=service_name, sentinel_manager=sentinel_manager, **kwargs)


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL for one server, sentinels and a master name, or cluster nodes."""

    kind: Literal["standalone", "sentinel", "cluster"]
    url: str
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    master: str = ""
    db: int = 0
    password: str | None = None
    nodes: list[tuple[str, int]] = field(default_factory=list)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """Read a URL; raises ValueError saying what is wrong (never echoing a password)."""
        parts = urlsplit(url)
        if parts.scheme in CLUSTER_SCHEMES:
            return cls._cluster(url)
        if parts.scheme != SENTINEL_SCHEME:
            return cls(kind="standalone", url=url)
        netloc = parts.netloc.rpartition("@")
        password = _password(parts.netloc)
        sentinels = [_host_port(node) for node in netloc[2].split(",") if node]
        path = [p for p in parts.path.split("/") if p]
        if not sentinels:
            raise ValueError("a sentinel URL needs at least one host:port")
        if not path:
            raise ValueError("a sentinel URL needs the master name: redis+sentinel://h:26379/NAME")
        if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("a sentinel URL's path is /MASTER or /MASTER/DB")
        db = int(path[1]) if len(path) == 2 else 0
        return cls(
            kind="sentinel",
            url=url,
            sentinels=sentinels,
            master=path[0],
            db=db,
            password=password,
        )

    @classmethod
    def _cluster(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        hosts = parts.netloc.rpartition("@")[2]
        nodes = [_host_port(node, _DEFAULT_REDIS_PORT) for node in hosts.split(",") if node]
        if not nodes:
            raise ValueError("a cluster URL needs at least one host:port")
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("a cluster URL has no database (a Redis Cluster has only db 0)")
        return cls(
            kind="cluster",
            url=url,
            nodes=nodes,
            password=_password(parts.netloc),
            tls=parts.scheme.startswith("rediss"),
        )

    def client(
        self, *, max_connections: int = PIPELINE_CONNECTIONS, timeout_s: float = POOL_TIMEOUT_S
    ) -> Redis:
        """A redis-py asyncio client on a pool of its own, at most ``max_connections``, each
        caller waiting up to ``timeout_s`` for one (then ``ConnectionError``); for Sentinel,
        bound to the current master."""
        if self.kind == "standalone":
            pool = BlockingConnectionPool.from_url(
                self.url, max_connections=max_connections, timeout=timeout_s
            )
            # Set before the first connection is made (the pool makes them as it needs).
            pool.connection_class = packed_in_c(pool.connection_class, pool.connection_kwargs)
            return Redis.from_pool(pool)
        if self.kind == "cluster":
            cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self.nodes],
                password=self.password,
                ssl=self.tls,
                max_connections=max_connections,
            )
            # Typed as Redis: RedisCluster has the same command methods (what it refuses in a
            # cluster, multi-slot MGET/MSET in a transaction, the code avoids: see
            # service.slot_owner), so the roles need no union type.
            return cast("Redis", cluster)
        sentinel: Sentinel = _SENTINEL(self.sentinels, password=self.password, db=self.db)
        master: Redis = sentinel.master_for(
            self.master,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=max_connections,
            timeout=timeout_s,
        )
        return master

    def broker(self, *, logger: logging.Logger, log_level: int = logging.DEBUG) -> RedisBroker:
        """A FastStream broker on the same Redis."""
        if self.kind == "standalone":
            return RedisBroker(self.url, logger=logger, log_level=log_level)
        if self.kind == "cluster":
            # FastStream's cluster broker: its stream subscribers run XREADGROUP / XAUTOCLAIM
            # on one stream key each, which the cluster client routes to that key's master.
            (host, port), *others = self.nodes
            auth = f":{quote(self.password, safe='')}@" if self.password else ""
            scheme = "rediss" if self.tls else "redis"
            return RedisClusterBroker(
                f"{scheme}://{auth}{host}:{port}",
                startup_nodes=others,
                logger=logger,
                log_level=log_level,
            )
        # Host and port of this URL are ignored (the sentinels name the master); its
        # password and db apply to the master connection.
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return RedisSentinelBroker(
            f"redis://{auth}sentinel-master/{self.db}",
            sentinels=self.sentinels,
            sentinel_master_name=self.master,
            logger=logger,
            log_level=log_level,
        )


def _password(netloc: str) -> str | None:
    userinfo, at, _ = netloc.rpartition("@")
    return unquote(userinfo.partition(":")[2]) or None if at else None


def _host_port(node: str, default_port: int = _DEFAULT_SENTINEL_PORT) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    if not host:
        return node, default_port
    if not port.isdigit():
        raise ValueError(f"not a host:port: {node!r}")
    return host.strip("[]"), int(port)


def connect(url: str) -> tuple[Redis, RedisBroker]:
    """A redis-py client and a FastStream broker on the same Redis.

    FastStream logs every message at INFO through a handler of its own: route it through a
    standard logger instead (warnings and up reach stderr) and demote message logs to DEBUG.
    """
    target = RedisTarget.parse(url)
    return target.client(), target.broker(logger=logging.getLogger("creditwatch.faststream"))
