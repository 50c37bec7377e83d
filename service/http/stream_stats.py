"""Gauges read from Redis at scrape time: stream lengths, consumer-group lag and pending, ages.

Prometheus collectors run synchronously; Redis here is async. So ``/metrics`` first refreshes
these gauges with a few pipelined reads, then renders the registry.

Usage::

    await StreamStats(redis, settings.streams, marks).refresh(now)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from config.settings import StreamSettings
from workers.poll_marks import PollMarks

__all__ = ["CONSUMER_LAG", "DATA_AGE", "PENDING", "STREAM_LENGTH", "StreamStats"]

STREAM_LENGTH = Gauge(
    "creditwatch_stream_length", "Entries in each creditwatch stream.", ["stream"]
)
CONSUMER_LAG = Gauge(
    "creditwatch_consumer_group_lag",
    "Entries of a stream not yet delivered to a consumer group.",
    ["stream", "group"],
)
PENDING = Gauge(
    "creditwatch_consumer_group_pending",
    "Entries delivered to a consumer group but not acknowledged yet.",
    ["stream", "group"],
)
DATA_AGE = Gauge(
    "creditwatch_data_age_seconds",
    "Seconds since the last successful poll, per source and business center.",
    ["source", "bc_id"],
)


class StreamStats:
    """Refreshes the gauges above from Redis."""

    def __init__(self, redis: Redis, streams: StreamSettings, marks: PollMarks) -> None:
        self._redis = redis
        self._names = {
            "snapshots": streams.snapshots,
            "alerts": streams.alerts,
            "deadletter": streams.deadletter,
        }
        self._marks = marks

    async def refresh(self, now: datetime) -> None:
        for label, stream in self._names.items():
            STREAM_LENGTH.labels(stream=label).set(await self._redis.xlen(stream))
            for group in await self._groups(stream):
                name = _text(group["name"])
                PENDING.labels(stream=label, group=name).set(int(group["pending"]))
                CONSUMER_LAG.labels(stream=label, group=name).set(await self._lag(stream, group))
        for (source, bc_id), age in (await self._marks.ages(now)).items():
            DATA_AGE.labels(source=source, bc_id=bc_id).set(age)

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
        last = _text(group["last-delivered-id"])
        rows = await self._redis.xrange(stream, min=f"({last}", count=100_000)
        return len(rows or [])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
