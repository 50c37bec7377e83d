"""Gauges read from Redis at scrape time: stream lengths, consumer-group lag and pending, ages
(declared in ``service.metrics`` with the role's other metrics).

Prometheus collectors run synchronously; Redis here is async. So ``/metrics`` first refreshes
these gauges with a few pipelined reads, then renders the registry.

Usage::

    await StreamStats(redis, settings.streams, marks).refresh(now)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from config.redis_text import decoded
from config.settings import StreamSettings
from service import metrics
from workers.poll_marks import PollMarks

__all__ = ["StreamStats"]


class StreamStats:
    """Refreshes the stream and poll-age gauges (``service.metrics``) from Redis."""

    def __init__(self, redis: Redis, streams: StreamSettings, marks: PollMarks) -> None:
        self._redis = redis
        # One label per kind of stream, summed over the shards (config.keyspace).
        self._names = {
            "snapshots": streams.keyspace.snapshot_streams(),
            "alerts": streams.keyspace.alert_streams(),
            "deadletter": [streams.deadletter],
        }
        self._marks = marks

    async def refresh(self, now: datetime) -> None:
        for label, shards in self._names.items():
            length = 0
            pending: dict[str, int] = {}
            lag: dict[str, int] = {}
            for stream in shards:
                length += await self._redis.xlen(stream)
                for group in await self._groups(stream):
                    name = decoded(group["name"])
                    pending[name] = pending.get(name, 0) + int(group["pending"])
                    lag[name] = lag.get(name, 0) + await self._lag(stream, group)
            metrics.STREAM_LENGTH.labels(stream=label).set(length)
            for name, count in pending.items():
                metrics.PENDING.labels(stream=label, group=name).set(count)
                metrics.CONSUMER_LAG.labels(stream=label, group=name).set(lag[name])
        for (source, bc_id), age in (await self._marks.ages(now)).items():
            metrics.DATA_AGE.labels(source=source, bc_id=bc_id).set(age)

    async def _groups(self, stream: str) -> list[dict[str, Any]]:
        try:
            groups: list[dict[str, Any]] = await self._redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            return []
        return groups

    async def _lag(self, stream: str, group: dict[str, Any]) -> int:
        # Redis 7 reports lag itself; on 6.2 count what lies past the last delivered id.
        lag = group.get("lag")
        if lag is not None:
            return int(lag)
        last = decoded(group["last-delivered-id"])
        rows = await self._redis.xrange(stream, min=f"({last}", count=100_000)
        return len(rows or [])
