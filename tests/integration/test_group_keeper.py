"""Consumer groups survive Redis losing them (a restart without persistence, a deleted stream)."""

from __future__ import annotations

import logging

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings
from service.deadletter import DeadLetters
from service.streams import GroupKeeper, consume, ensure_group
from tests.support.waiting import eventually


async def test_a_lost_group_is_recreated_and_consumption_resumes(
    settings: Settings, redis_client: Redis
) -> None:
    stream = settings.streams.snapshots
    seen: list[bytes] = []

    async def handle(payload: bytes, entry_id: str) -> None:
        seen.append(payload)

    broker = RedisBroker(
        settings.redis_url or "", logger=logging.getLogger("test"), log_level=logging.DEBUG
    )
    await ensure_group(redis_client, stream, "g")
    subscribers = consume(
        broker,
        stream=stream,
        group="g",
        consumer="c1",
        handle=handle,
        dead_letters=DeadLetters(redis_client, settings.streams),
        reclaim_idle_ms=1000,
    )
    keeper = GroupKeeper(redis_client, [(stream, "g")], subscribers)
    await broker.start()
    try:
        await redis_client.xadd(stream, {"__data__": b"one"})

        async def got(payload: bytes) -> bool:
            return payload in seen

        await eventually(lambda: got(b"one"))
        # What a Redis restart without AOF does to us: stream and group are gone.
        await redis_client.delete(stream)

        async def subscriber_gave_up() -> bool:
            return not all(s.running for s in subscribers)

        await eventually(subscriber_gave_up)  # FastStream stops on NOGROUP...
        assert await keeper.check() >= 1  # ...and the keeper brings it back
        assert all(s.running for s in subscribers)
        await redis_client.xadd(stream, {"__data__": b"two"})
        await eventually(lambda: got(b"two"))
        assert seen == [b"one", b"two"]
    finally:
        await broker.stop()


async def test_the_keeper_loop_starts_and_stops(settings: Settings, redis_client: Redis) -> None:
    stream = settings.streams.alerts
    keeper = GroupKeeper(redis_client, [(stream, "g")], [], every_s=0.05)
    keeper.start()

    async def created() -> bool:
        return bool(await redis_client.exists(stream))

    await eventually(created)
    await keeper.stop()
