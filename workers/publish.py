"""Publishing snapshots onto the snapshot stream, through FastStream, one pipeline per batch.

A poll of one business center yields one snapshot per advertiser; they are written with one
round trip (a pipeline of XADDs) rather than one per snapshot.

Usage::

    publisher = SnapshotPublisher(broker, redis, settings.streams)
    await publisher.publish(snapshots)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from config.settings import StreamSettings
from workers import metrics
from workers.snapshots import AccountBalanceSnapshot, Snapshot

__all__ = ["DATA_FIELD", "SnapshotPublisher", "stream_entry"]

# The one field FastStream (and so every writer of our streams) puts the payload in.
DATA_FIELD = b"__data__"


async def stream_entry(payload: bytes, correlation_id: str) -> dict[FieldT, EncodableT]:
    """The fields of a stream entry as FastStream writes them, for a pipelined XADD.

    FastStream's publisher plumbing costs more per message than the XADD itself
    (bench/RESULTS.md); its envelope is built here and written straight into a pipeline.
    """
    envelope = await BinaryMessageFormatV1.encode(
        message=payload, reply_to=None, headers=None, correlation_id=correlation_id
    )
    return {DATA_FIELD: envelope}


class SnapshotPublisher:
    """Writes snapshots to ``<prefix>:snapshots`` (trimmed to about ``streams.maxlen``)."""

    def __init__(self, broker: RedisBroker, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        # Declared so that the AsyncAPI document describes the stream and its schema.
        broker.publisher(
            stream=streams.snapshots,
            title=streams.snapshots,
            description="One entry per observed fact: balances, spend, transactions.",
            schema=AccountBalanceSnapshot,
        )
        self._maxlen = streams.maxlen
        self._stream = streams.snapshots

    async def publish(self, snapshots: Sequence[Snapshot]) -> int:
        """Publish every snapshot in one round trip; returns how many were written."""
        if not snapshots:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for snapshot in snapshots:
                entry = await stream_entry(snapshot.to_json(), snapshot.snapshot_id)
                pipe.xadd(self._stream, entry, maxlen=self._maxlen, approximate=True)
            await pipe.execute()
        for kind, count in Counter(snapshot.kind for snapshot in snapshots).items():
            metrics.SNAPSHOTS_PUBLISHED.labels(kind=kind).inc(count)
        return len(snapshots)
