"""Tick claims: several poller replicas, and each business center polled by one of them per tick.

Time is cut into ticks of the job's interval; tick ``n`` covers ``[n*interval, (n+1)*interval)``
of the Unix clock. Before a run, a replica claims the current tick of that job with one
``SET key owner NX PX`` in Redis; only the replica that set it runs. The tick number is the
fencing token. If the replica that would poll dies, the next tick is free for any other:
polling resumes within one to two intervals, with no lease to expire or renew.

Usage::

    claims = TickClaims(redis, settings.streams, owner="host-1:4242")
    if await claims.claim("advertiser_balance:7001", interval_s=300) is not None:
        await poller.poll("7001")
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from config.settings import StreamSettings

__all__ = ["TickClaims"]


class TickClaims:
    """Claims ticks of named jobs in Redis; one winner per job and tick."""

    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._owner = owner
        self._clock = clock

    async def claim(self, job_id: str, interval_s: float) -> int | None:
        """The current tick number if this replica won it, else None."""
        tick = int(self._clock() // interval_s)
        key = self._streams.key("claim", job_id, str(tick))
        # Kept for two intervals: long enough that a late runner of the same tick still loses.
        won = await self._redis.set(key, self._owner, nx=True, px=max(1, int(interval_s * 2000)))
        return tick if won else None
