"""Redis connections from one URL, for redis-py and FastStream alike: standalone or Sentinel.

``CREDITWATCH_REDIS_URL`` takes either form:

- ``redis://[:password@]host:6379/0``, ``rediss://…``, ``unix:///path/redis.sock``: one server.
- ``redis+sentinel://[:password@]host1:26379,host2:26379/mymaster[/db]``: the master that the
  sentinels name ``mymaster``; clients re-discover it after a failover.

Usage::

    target = RedisTarget.parse(settings.redis_url)
    redis = target.client()
    broker = target.broker(logger=logging.getLogger("faststream"))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from faststream.redis import RedisBroker
from faststream.redis.broker.sentinel_broker import RedisSentinelBroker
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

__all__ = ["SENTINEL_SCHEME", "RedisTarget", "connect"]

SENTINEL_SCHEME = "redis+sentinel"
_DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL for one server, or sentinels and a master name."""

    kind: Literal["standalone", "sentinel"]
    url: str
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    master: str = ""
    db: int = 0
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """Read a URL; raises ValueError saying what is wrong (never echoing a password)."""
        parts = urlsplit(url)
        if parts.scheme != SENTINEL_SCHEME:
            return cls(kind="standalone", url=url)
        netloc = parts.netloc.rpartition("@")
        password = unquote(netloc[0].partition(":")[2]) or None if netloc[1] else None
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

    def client(self) -> Redis:
        """A redis-py asyncio client (for Sentinel: bound to the current master)."""
        if self.kind == "standalone":
            return Redis.from_url(self.url)
        sentinel = Sentinel(self.sentinels, password=self.password, db=self.db)  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(self.master)
        return master

    def broker(self, *, logger: logging.Logger, log_level: int = logging.DEBUG) -> RedisBroker:
        """A FastStream broker on the same Redis."""
        if self.kind == "standalone":
            return RedisBroker(self.url, logger=logger, log_level=log_level)
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


def _host_port(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    if not host:
        return node, _DEFAULT_SENTINEL_PORT
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
