"""Silences: matchers with a start and an end, a comment and an author, kept in Redis.

A silenced transition is recorded (in the delivery history, status ``silenced``) but not sent.
Matchers are ``label=glob`` over the same labels routes match on (kind, severity, status,
advertiser_id, bc_id, ... and the account labels); every matcher must match.

Bounded: ``add`` with a ``limit`` refuses a silence beyond that many pending or active ones
(``TooManySilences``) and keeps no more expired records than that (the oldest go first). The
parsed silences are cached per process and re-read only when a version counter, bumped by
every change, moves: matching an alert costs one GET, not a parse of every silence.

Usage::

    silence = await silences.add({"kind": "credit.*"}, starts_at=now, ends_at=now + 2h,
                                 comment="top-up on its way", author="ana", limit=500)
    hit = await silences.matching(labels, now)     # the first active silence, or None
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Iterable
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict
from redis.asyncio import Redis

from config.settings import StreamSettings
from service.redis_records import read_record
from service.slot_owner import transaction

__all__ = ["Silence", "Silences", "TooManySilences", "first_matching"]


class TooManySilences(Exception):
    """As many silences as allowed are pending or active already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} pending or active silences")
        self.limit = limit


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
        self._key = streams.keyspace.silences()
        self._version_key = streams.keyspace.silences_version()
        self._cached: tuple[bytes | str | None, list[Silence]] | None = None

    async def add(
        self,
        matchers: dict[str, str],
        *,
        starts_at: datetime,
        ends_at: datetime,
        comment: str,
        author: str,
        now: datetime,
        limit: int | None = None,
    ) -> Silence:
        """A new silence; with ``limit``, ``TooManySilences`` if that many are live already."""
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
        stale: list[str] = []
        if limit is not None:
            existing = await self.all()
            if sum(1 for s in existing if s.state(now) != "expired") >= limit:
                raise TooManySilences(limit)
            expired = sorted((s for s in existing if s.state(now) == "expired"), key=_ended)
            stale = [s.id for s in expired[: max(0, len(expired) - limit)]]
        async with transaction(self._redis, self._key) as change:
            change.hset(self._key, silence.id, silence.model_dump_json())
            if stale:
                change.hdel(self._key, *stale)
            change.incr(self._version_key)
            await change.execute()
        return silence

    async def all(self) -> list[Silence]:
        """Every silence, oldest start first (from the cache while nothing changed)."""
        version = await self._redis.get(self._version_key)
        if self._cached is not None and self._cached[0] == version:
            return list(self._cached[1])
        rows = await self._redis.hgetall(self._key)
        # A hand-edited entry that no longer parses must not stop every alert.
        out = [s for s in (read_record(Silence, raw) for raw in rows.values()) if s is not None]
        out.sort(key=lambda s: (s.starts_at, s.id))
        self._cached = (version, out)
        return list(out)

    async def expire(self, silence_id: str, now: datetime) -> Silence | None:
        raw = await self._redis.hget(self._key, silence_id)
        if raw is None:
            return None
        silence = Silence.model_validate_json(raw)
        if silence.ends_at > now:
            silence = silence.model_copy(update={"ends_at": max(now, silence.starts_at)})
            async with transaction(self._redis, self._key) as change:
                change.hset(self._key, silence_id, silence.model_dump_json())
                change.incr(self._version_key)
                await change.execute()
        return silence

    async def matching(self, labels: dict[str, str], now: datetime) -> Silence | None:
        return first_matching(await self.all(), labels, now)


def first_matching(
    silences: Iterable[Silence], labels: dict[str, str], now: datetime
) -> Silence | None:
    """The first of ``silences`` (as ``all`` orders them) active now and matching ``labels``."""
    for silence in silences:
        if silence.active(now) and silence.matches(labels):
            return silence
    return None


def _ended(silence: Silence) -> datetime:
    return silence.ends_at
