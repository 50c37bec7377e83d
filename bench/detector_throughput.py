"""Benchmark 1: detector throughput through the real consumer path, state in Redis.

200,000 balance snapshots (10,000 advertisers x 20 polls) are written to the snapshot stream
first; then the service role starts and the clock runs until the detectors' group has read
and acknowledged everything. Every advertiser drains through its low line (poll 8) and to
zero (poll 12) and is topped up (poll 16), so each must produce exactly four transitions:
low and exhausted, firing then resolved. Reference: a bare redis-py XREADGROUP + XACK + JSON
decode loop over the same entries.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis

from bench.common import Timer, record, redis_url
from config.settings import NotifySettings, Settings, StreamSettings
from service.alerts import parse_transition
from service.logs import configure_logging
from service.roles import service_role
from workers.snapshots import AccountBalanceSnapshot, BalanceInfo

ADVERTISERS = int(os.environ.get("BENCH_ADVERTISERS", "10000"))
POLLS = 20
TARGET_RATIO = 0.33
TARGET_RATE = 30_000


def grant_at(poll: int) -> Decimal:
    if poll < 16:
        return max(Decimal(0), Decimal(1200) - Decimal(100) * poll)  # 20 % line = 240 at poll 8
    return Decimal(2000)


def payloads() -> list[bytes]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for poll in range(POLLS):
        for advertiser in range(ADVERTISERS):
            grant = grant_at(poll)
            out.append(
                AccountBalanceSnapshot(
                    bc_id="7001",
                    advertiser_id=str(710_000 + advertiser),
                    advertiser_name="Shop",
                    currency="USD",
                    balances=BalanceInfo(grant_balance=grant, valid_grant_balance=grant),
                    observed_at=start + timedelta(minutes=5 * poll),
                ).to_json()
            )
    return out


async def fill(redis: Redis, stream: str, items: list[bytes]) -> None:
    for start in range(0, len(items), 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for item in items[start : start + 5000]:
                pipe.xadd(stream, {"__data__": item})
            await pipe.execute()


async def reference(redis: Redis, stream: str) -> float:
    await redis.xgroup_create(stream, "reference", id="0")
    with Timer() as timer:
        while True:
            reply = await redis.xreadgroup("reference", "r1", {stream: ">"}, count=1000)
            if not reply:
                break
            ids = []
            for entry_id, fields in reply[0][1]:
                json.loads(fields[b"__data__"])
                ids.append(entry_id)
            await redis.xack(stream, "reference", *ids)
    return timer.seconds


async def drained(redis: Redis, stream: str, group: str) -> bool:
    info = await redis.xinfo_stream(stream)
    for g in await redis.xinfo_groups(stream):
        if g["name"] == group.encode():
            return bool(g["last-delivered-id"] == info["last-generated-id"] and g["pending"] == 0)
    return False


async def main() -> None:
    configure_logging("warning")
    items = payloads()
    with redis_url() as url:
        redis = Redis.from_url(url)
        prefix = f"cwbench-{uuid.uuid4().hex[:8]}"
        streams = StreamSettings(prefix=prefix, maxlen=1_000_000, consumer="bench")
        settings = Settings(redis_url=url, streams=streams, notify=NotifySettings(console=False))
        await fill(redis, streams.snapshots, items)
        reference_s = await reference(redis, streams.snapshots)

        started = time.perf_counter()
        async with service_role(settings, url):
            while not await drained(redis, streams.snapshots, "detectors"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ours_s = time.perf_counter() - started
        transitions = [
            parse_transition(BinaryMessageFormatV1.parse(fields[b"__data__"])[0])
            for _, fields in await redis.xrange(streams.alerts)
        ]
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()

    per_advertiser = Counter(t.advertiser_id for t in transitions)
    kinds = Counter((t.kind, t.status) for t in transitions)
    exactly_once = len({t.transition_id for t in transitions}) == len(transitions) and set(
        per_advertiser.values()
    ) == {4}
    expected = {
        (k, s): ADVERTISERS
        for k in ("credit.low", "credit.exhausted")
        for s in ("firing", "resolved")
    }
    correct = exactly_once and dict(kinds) == expected and len(per_advertiser) == ADVERTISERS
    ours_rate = len(items) / ours_s
    reference_rate = len(items) / reference_s
    ratio = ours_rate / reference_rate
    record(
        f"detector throughput ({len(items):,} snapshots)",
        f"{ours_rate:,.0f} snapshots/s (reference {reference_rate:,.0f}/s); "
        f"{len(transitions):,} transitions, exactly once: {correct}",
        f"{ratio:.2f}",
        f">= {TARGET_RATIO} and >= {TARGET_RATE:,}/s",
        correct and ratio >= TARGET_RATIO and ours_rate >= TARGET_RATE,
        note="one message at a time, one WATCH/MULTI per snapshot",
    )
    if not correct:
        raise SystemExit(f"wrong alerts: {dict(kinds)}")


if __name__ == "__main__":
    asyncio.run(main())
