"""One balance poll through a real broker and Redis: the valid rows published to the snapshot
stream, the rejected ones put in the dead-letter stream, every snapshot stamped ``seen_at``."""

from __future__ import annotations

from datetime import datetime

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings
from service.deadletter import DeadLetters
from workers.poller import BalancePoller, BalanceSource, PollResult
from workers.publish import SnapshotPublisher


async def poll_balances_once(
    api: BalanceSource, bc_id: str, settings: Settings, redis: Redis, *, seen_at: datetime
) -> PollResult | None:
    """Poll ``bc_id``'s advertiser balances once; the broker is closed again afterwards."""
    broker = RedisBroker(settings.redis_url or "")
    await broker.connect()
    try:
        poller = BalancePoller(
            api,
            SnapshotPublisher(broker, redis, settings.streams),
            reject=DeadLetters(redis, settings.streams).put,
            clock=lambda: seen_at,
        )
        return await poller.poll(bc_id)
    finally:
        await broker.stop()
