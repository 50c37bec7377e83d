"""Publishing snapshots onto the snapshot streams, through FastStream, one pipeline per batch.

A poll of one business center yields one snapshot per advertiser; they are written with one
round trip (a pipeline of XADDs) rather than one per snapshot. Each goes to the snapshot
stream of its shard (``config.keyspace``): an advertiser's own, a business center's snapshots
by the center's id, so every state's snapshots stay in one stream, in order.

Usage::

    publisher = SnapshotPublisher(broker, redis, settings.streams)
    await publisher.publish(snapshots)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import StreamSettings
from workers import metrics
from workers.contract.envelope import stream_entry
from workers.contract.snapshots import (
    AccountBalanceSnapshot,
    BcBalanceSnapshot,
    Snapshot,
    SourceStatusSnapshot,
)
from workers.stream_docs import document_streams

__all__ = ["SnapshotPublisher", "owner_id"]


def owner_id(snapshot: Snapshot) -> str:
    """The id whose state the snapshot advances, which picks its shard: the center's for the
    center's own snapshots, else the advertiser's."""
    if isinstance(snapshot, BcBalanceSnapshot | SourceStatusSnapshot):
        return snapshot.bc_id
    return snapshot.advertiser_id


class SnapshotPublisher:
    """Writes snapshots to their shard's ``<prefix>:snapshots`` (trimmed to about
    ``streams.maxlen``)."""

    def __init__(self, broker: RedisBroker, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        # Declared so that the AsyncAPI document describes the streams and their schema.
        document_streams(
            broker,
            streams.keyspace.snapshot_streams(),
            description="One entry per observed fact: balances, spend, transactions.",
            schema=AccountBalanceSnapshot,
        )
        self._maxlen = streams.maxlen
        self._keyspace = streams.keyspace

    async def publish(self, snapshots: Sequence[Snapshot]) -> int:
        """Publish every snapshot in one round trip; returns how many were written."""
        if not snapshots:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for snapshot in snapshots:
                entry = await stream_entry(snapshot.to_json(), snapshot.snapshot_id)
                stream = self._keyspace.snapshot_stream(self._keyspace.shard_of(owner_id(snapshot)))
                pipe.xadd(stream, entry, maxlen=self._maxlen, approximate=True)
            await pipe.execute()
        for kind, count in Counter(snapshot.kind for snapshot in snapshots).items():
            metrics.SNAPSHOTS_PUBLISHED.labels(kind=kind).inc(count)
        return len(snapshots)
