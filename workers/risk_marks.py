"""Risk marks: the accounts forecast to run out of ad credit (or cross their low line) soon.

One Redis sorted set, ``<prefix>:risk``: member ``<bc_id>:<advertiser_id>``, score the Unix
time the detector's forecast says the account runs out or crosses its low line. The detector
writes it (``service.detect.risk``) each time it evaluates a balance, and removes the account
once it has run out or is no longer at risk; the poller reads it (``workers.risk_polls``) to
poll such an account on its own when that moment comes. It lives here, in ``workers``, so both
roles import it and ``workers`` imports nothing of ``service``.

Usage::

    marks = RiskMarks(redis, settings.streams)
    await marks.update(at_risk={("7001", "700001"): 1767225600.0}, safe=[("7001", "700002")])
    due = await marks.due(until=time.time())      # [("7001", "700001", 1767225600.0), ...]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import StreamSettings

__all__ = ["RiskMarks"]

Account = tuple[str, str]  # (bc_id, advertiser_id)


def _member(account: Account) -> str:
    return f"{account[0]}:{account[1]}"


class RiskMarks:
    """Reads and writes the at-risk sorted set."""

    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self.key = streams.keyspace.risk_marks()

    async def update(self, *, at_risk: Mapping[Account, float], safe: Iterable[Account]) -> None:
        """Mark ``at_risk`` accounts with their moment, unmark the ``safe`` ones, in one trip."""
        gone = [_member(account) for account in safe]
        if not at_risk and not gone:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            if at_risk:
                pipe.zadd(self.key, {_member(a): at for a, at in at_risk.items()})
            if gone:
                pipe.zrem(self.key, *gone)
            await pipe.execute()

    async def due(self, *, until: float, limit: int = 100) -> list[tuple[str, str, float]]:
        """Accounts whose moment is at or before ``until``, soonest first."""
        raw = await self._redis.zrangebyscore(
            self.key, "-inf", until, start=0, num=limit, withscores=True
        )
        out: list[tuple[str, str, float]] = []
        for entry in raw:
            member, score = entry[0], entry[1]
            text = decoded(member)
            bc_id, _, advertiser_id = text.partition(":")
            out.append((bc_id, advertiser_id, float(score)))
        return out

    async def forget(self, bc_id: str, advertiser_id: str) -> None:
        await self._redis.zrem(self.key, _member((bc_id, advertiser_id)))
