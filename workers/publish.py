"""Publishing snapshots onto the snapshot stream, through FastStream, one pipeline per batch.

A poll of one business center yields one snapshot per advertiser; they are written with one
round trip (a pipeline of XADDs) rather than one per snapshot.

Usage::

    publisher = SnapshotPublisher(broker, redis, settings.streams)
    await publisher.publish(snapshots)
"""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import StreamSettings
from workers import metrics
from workers.snapshots import AccountBalanceSnapshot, Snapshot

__all__ = ["SnapshotPublisher"]


class SnapshotPublisher:
    """Writes snapshots to ``<prefix>:snapshots`` (trimmed to about ``streams.maxlen``)."""

    def __init__(self, broker: RedisBroker, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._publisher = broker.publisher(
            stream=streams.snapshots,
            title=streams.snapshots,
            description="One entry per observed fact: balances, spend, transactions.",
            schema=AccountBalanceSnapshot,
        )
        self._maxlen = streams.maxlen

    async def publish(self, snapshots: Sequence[Snapshot]) -> int:
        """Publish every snapshot in one round trip; returns how many were written."""
        if not snapshots:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for snapshot in snapshots:
                await self._publisher.publish(
                    snapshot.to_json(), maxlen=self._maxlen, pipeline=pipe
                )
            await pipe.execute()
        for snapshot in snapshots:
            metrics.SNAPSHOTS_PUBLISHED.labels(kind=snapshot.kind).inc()
        return len(snapshots)
