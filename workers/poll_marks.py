"""Poll marks: when each (source, business center) was last polled successfully, kept in Redis.

The poller writes one after every successful poll; the service's ``/readyz`` and the data-age
metric read them, from any process, like arq's health key.

Usage::

    marks = PollMarks(redis, settings.streams)
    await marks.mark("advertiser_balance", "7001", at=observed_at)
    ages = await marks.ages(now)          # {("advertiser_balance", "7001"): 12.5, ...}
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import StreamSettings

__all__ = ["PollMarks"]

# A mark older than this is of no use to anyone: let Redis forget it.
_KEEP_S = 7 * 24 * 3600


class PollMarks:
    """Reads and writes last-successful-poll times."""

    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._hash = streams.keyspace.poll_health()

    async def mark(self, source: str, bc_id: str, *, at: datetime) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._hash, f"{source}:{bc_id}", str(at.timestamp()))
            pipe.expire(self._hash, _KEEP_S)
            await pipe.execute()

    async def last(self) -> dict[tuple[str, str], float]:
        """Unix time of the last successful poll, per (source, bc_id)."""
        raw = await self._redis.hgetall(self._hash)
        out: dict[tuple[str, str], float] = {}
        for field, value in raw.items():
            name = decoded(field)
            source, _, bc_id = name.partition(":")
            out[(source, bc_id)] = float(value)
        return out

    async def ages(self, now: datetime) -> dict[tuple[str, str], float]:
        """Seconds since the last successful poll, per (source, bc_id); never below zero.

        A mark can be later than ``now``: a poll that finished while the reader was busy
        before this call, or a poller whose clock runs a little ahead. Its data is fresh.
        """
        return {key: max(0.0, now.timestamp() - at) for key, at in (await self.last()).items()}
