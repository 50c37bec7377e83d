"""Suspension marks: which TikTok endpoints a poller has paused, and until when, in Redis.

The poller follows its budgets' suspensions and writes a mark when an endpoint pauses (again)
and deletes it when calls get through; the service's ``/readyz`` reads the marks from any
process. A mark names its poller, so replicas do not clear each other's, and one whose
``until`` has passed is ignored, so a poller that died while paused cannot hold readiness.

Usage::

    marks = SuspensionMarks(redis, settings.streams, owner=settings.streams.consumer)
    marks.follow(budget.suspensions)       # poller side
    await marks.drain()                    # on stop: let pending writes finish
    for pause in await marks.current(now):  # service side: pauses in effect
        ...
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from config.settings import StreamSettings
from workers.suspensions import Pause, Suspensions

__all__ = ["SuspensionMark", "SuspensionMarks"]

log = structlog.get_logger(__name__)

# A mark outliving this is of no use to anyone: let Redis forget the hash.
_KEEP_S = 7 * 24 * 3600


class SuspensionMark(BaseModel):
    """One paused endpoint as ``/readyz`` shows it."""

    model_config = ConfigDict(frozen=True)

    owner: str
    app: str
    endpoint: str
    since: AwareDatetime
    until: AwareDatetime
    code: int | None = None

    def describe(self) -> str:
        app = f" (app {self.app})" if self.app else ""
        code = f", code {self.code}" if self.code is not None else ""
        return (
            f"tiktok endpoint {self.endpoint}{app} suspended until "
            f"{self.until:%Y-%m-%dT%H:%M:%SZ}{code}"
        )


class SuspensionMarks:
    """Writes a poller's pauses to Redis and reads everyone's."""

    def __init__(self, redis: Redis, streams: StreamSettings, *, owner: str = "") -> None:
        self._redis = redis
        self._hash = streams.keyspace.suspension_health()
        self._owner = owner
        # Listeners are synchronous: each write runs as a task, kept here until done.
        self._writes: set[asyncio.Task[None]] = set()
        # Writes happen in the order of the changes (a pause, then its end).
        self._order = asyncio.Lock()

    def follow(self, suspensions: Suspensions) -> None:
        suspensions.add_listener(self._changed)

    def _changed(self, app: str, endpoint: str, pause: Pause | None) -> None:
        task = asyncio.get_running_loop().create_task(self._write(app, endpoint, pause))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, app: str, endpoint: str, pause: Pause | None) -> None:
        field = f"{self._owner}|{app}|{endpoint}"
        async with self._order:
            await self._put(field, app, endpoint, pause)

    async def _put(self, field: str, app: str, endpoint: str, pause: Pause | None) -> None:
        try:
            if pause is None:
                await self._redis.hdel(self._hash, field)
                return
            mark = SuspensionMark(
                owner=self._owner,
                app=app,
                endpoint=endpoint,
                since=pause.since,
                until=pause.until,
                code=pause.code,
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(self._hash, field, mark.model_dump_json())
                pipe.expire(self._hash, _KEEP_S)
                await pipe.execute()
        except (RedisError, OSError) as error:
            # Readiness misses this pause (or shows it until it has passed); polling goes on.
            log.warning("suspension_mark.failed", endpoint=endpoint, error=str(error))

    async def drain(self) -> None:
        if self._writes:
            await asyncio.wait(set(self._writes))

    async def current(self, now: datetime) -> list[SuspensionMark]:
        """Every mark whose pause has not ended by ``now``, by endpoint."""
        marks: list[SuspensionMark] = []
        for value in (await self._redis.hgetall(self._hash)).values():
            try:
                mark = SuspensionMark.model_validate_json(value)
            except ValueError:
                continue  # not ours to judge; an unreadable mark cannot hold readiness
            if mark.until > now:
                marks.append(mark)
        return sorted(marks, key=lambda m: (m.endpoint, m.app, m.owner))
