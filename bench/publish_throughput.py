"""Benchmark 2: the poller's publish path for 200,000 snapshots vs a pipelined XADD loop.

Both write the same snapshot JSON to a fresh stream in batches of one business center's poll
(1,000 accounts); the reference skips FastStream and writes the bytes directly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from bench.common import Timer, record, redis_url
from config.settings import StreamSettings
from tests.support.snapshots import grant_snapshot
from workers.contract.snapshots import AccountBalanceSnapshot
from workers.publish import SnapshotPublisher

ADVERTISERS = 10_000
POLLS = 20
BATCH = 1_000
TARGET_RATIO = 0.5


def snapshots() -> list[AccountBalanceSnapshot]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for poll in range(POLLS):
        for advertiser in range(ADVERTISERS):
            grant = Decimal(1000 - poll * 40 - advertiser % 7)
            out.append(
                grant_snapshot(
                    str(7000 + advertiser % 5),
                    str(710_000 + advertiser),
                    grant,
                    start + timedelta(minutes=5 * poll),
                    name=f"Shop {advertiser}",
                )
            )
    return out


async def main() -> None:
    items = snapshots()
    with redis_url() as url:
        redis = Redis.from_url(url)
        prefix = f"cwbench-{uuid.uuid4().hex[:8]}"
        streams = StreamSettings(prefix=prefix, maxlen=1_000_000)

        reference_stream = f"{prefix}:reference"
        payloads = [s.to_json() for s in items]
        with Timer() as reference:
            for start in range(0, len(payloads), BATCH):
                async with redis.pipeline(transaction=False) as pipe:
                    for payload in payloads[start : start + BATCH]:
                        pipe.xadd(reference_stream, {"__data__": payload}, maxlen=streams.maxlen)
                    await pipe.execute()

        broker = RedisBroker(url, logger=logging.getLogger("bench"), log_level=logging.DEBUG)
        await broker.connect()
        publisher = SnapshotPublisher(broker, redis, streams)
        with Timer() as ours:
            for start in range(0, len(items), BATCH):
                await publisher.publish(items[start : start + BATCH])
        assert await redis.xlen(streams.snapshots) == len(items)
        await broker.stop()
        await redis.delete(reference_stream, streams.snapshots)
        await redis.aclose()

    ours_rate = len(items) / ours.seconds
    reference_rate = len(items) / reference.seconds
    ratio = ours_rate / reference_rate
    record(
        "publish throughput (200k snapshots)",
        f"{ours_rate:,.0f} snapshots/s (reference {reference_rate:,.0f}/s)",
        f"{ratio:.2f}",
        f">= {TARGET_RATIO}",
        ratio >= TARGET_RATIO,
        note="per-message FastStream envelope encoding dominates",
    )


if __name__ == "__main__":
    asyncio.run(main())
