"""Silences: matchers with a start and an end, a comment and an author, kept in Redis.

A silenced transition is recorded (in the delivery history, status ``silenced``) but not sent.
Matchers are ``label=glob`` over the same labels routes match on (kind, severity, status,
advertiser_id, bc_id, ... and the account labels); every matcher must match.

Usage::

    silence = await silences.add({"kind": "credit.*"}, starts_at=now, ends_at=now + 2h,
                                 comment="top-up on its way", author="ana")
    hit = await silences.matching(labels, now)     # the first active silence, or None
"""

from __future__ import annotations

import fnmatch
import secrets
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from config.settings import StreamSettings

__all__ = ["Silence", "Silences"]


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    matchers: dict[str, str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    comment: str
    author: str
    created_at: AwareDatetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: dict[str, str]) -> bool:
        return all(
            fnmatch.fnmatchcase(labels.get(name, ""), glob) for name, glob in self.matchers.items()
        )


class Silences:
    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._key = streams.key("silences")

    async def add(
        self,
        matchers: dict[str, str],
        *,
        starts_at: datetime,
        ends_at: datetime,
        comment: str,
        author: str,
        now: datetime,
    ) -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        silence = Silence(
            id="sil_" + secrets.token_hex(6),
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            author=author,
            created_at=now,
        )
        await self._redis.hset(self._key, silence.id, silence.model_dump_json())
        return silence

    async def all(self) -> list[Silence]:
        rows = await self._redis.hgetall(self._key)
        out: list[Silence] = []
        for raw in rows.values():
            try:
                out.append(Silence.model_validate_json(raw))
            except ValidationError:
                continue  # a hand-edited entry must not stop every alert
        return sorted(out, key=lambda s: s.starts_at)

    async def expire(self, silence_id: str, now: datetime) -> Silence | None:
        raw = await self._redis.hget(self._key, silence_id)
        if raw is None:
            return None
        silence = Silence.model_validate_json(raw)
        if silence.ends_at > now:
            silence = silence.model_copy(update={"ends_at": max(now, silence.starts_at)})
            await self._redis.hset(self._key, silence_id, silence.model_dump_json())
        return silence

    async def matching(self, labels: dict[str, str], now: datetime) -> Silence | None:
        for silence in await self.all():
            if silence.active(now) and silence.matches(labels):
                return silence
        return None
