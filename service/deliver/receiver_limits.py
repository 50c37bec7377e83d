"""Per-receiver rate limits kept in Redis: a delivery over the limit waits, it is never dropped.

One key per receiver holds the earliest time the next message may go; replicas share it, so
the limit holds across the whole deployment.

Usage::

    wait_s = await limiter.reserve("ops-slack", per_s=1.0, now=clock())
    if wait_s > 0: reschedule the delivery wait_s later
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import StreamSettings
from service.deliver.clock import to_epoch

__all__ = ["RateLimiter"]

# Reserve a slot if it is free now, else say how long until it is.
_RESERVE = """
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
if now >= next_at then
  redis.call('SET', KEYS[1], tostring(now + tonumber(ARGV[2])), 'EX', 3600)
  return '0'
end
return tostring(next_at - now)
"""


class RateLimiter:
    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._streams = streams
        self._script = redis.register_script(_RESERVE)

    async def reserve(self, receiver: str, *, per_s: float | None, now: datetime) -> float:
        """0 if a message may go now (the slot is taken), else the seconds to wait."""
        if per_s is None:
            return 0.0
        key = self._streams.keyspace.receiver_ratelimit(receiver)
        wait = await self._script(keys=[key], args=[repr(to_epoch(now)), repr(1.0 / per_s)])
        return float(decoded(wait))
