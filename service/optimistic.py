"""Optimistic transactions: WATCH the keys, read, decide, MULTI/EXEC the writes, and start
over when another client changed a watched key in between.

Every read-decide-write in Redis that must not lose a concurrent change (a state commit, a
group flush, a delivery replay, a secret rotation) goes through ``commit``, on the client
that owns the keys' slot (``service.slot_owner``: on a Cluster, the slot master's plain
client). redis-py's own ``Redis.transaction()`` runs the same loop but fits none of them: it
knows no slot owner, it EXECs an empty MULTI when there is nothing to write (a conflict then
reads everything again for nothing), and it retries without bound, where a state batch gives
up after a few conflicts and commits its states one by one.

Usage::

    async def decide(pipe: Pipeline) -> Decision[Delivery | None]:
        current = _parse(await pipe.get(key))           # immediate: the pipe is watching
        if current is None:
            return Decision(None)                       # nothing to write: UNWATCH, return
        async def writes(pipe: Pipeline) -> None:       # queued between MULTI and EXEC
            pipe.set(key, replayed.model_dump_json())
        return Decision(replayed, writes)

    replayed = await commit(redis, [key], decide)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from service.slot_owner import transaction

__all__ = ["Decision", "Writes", "commit"]

T = TypeVar("T")

# The writes of a decision, queued on the pipeline between MULTI and EXEC.
Writes = Callable[[Pipeline], Awaitable[None]]


@dataclass(frozen=True)
class Decision(Generic[T]):
    """What a transaction decided from its reads: the value ``commit`` returns once the
    writes are committed, and the writes (None: nothing to write)."""

    value: T
    writes: Writes | None = None


async def commit(
    redis: Redis,
    keys: Sequence[str],
    decide: Callable[[Pipeline], Awaitable[Decision[T]]],
    *,
    attempts: int | None = None,
    on_conflict: Callable[[], None] | None = None,
) -> T:
    """WATCH ``keys`` (all of one slot), ``decide`` from reads made meanwhile, and commit its
    writes in one MULTI/EXEC; when a watched key changed before the EXEC (nothing was
    written), ``on_conflict`` is called and it all starts over, up to ``attempts`` times
    (None: until it commits), after which the ``WatchError`` goes on to the caller."""
    conflicts = 0
    while True:
        try:
            async with transaction(redis, keys[0]) as pipe:
                await pipe.watch(*keys)
                decision = await decide(pipe)
                if decision.writes is not None:
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    await decision.writes(pipe)
                    await pipe.execute()
                # Leaving the pipeline resets it, which UNWATCHes when nothing was written.
                return decision.value
        except WatchError:
            conflicts += 1
            if on_conflict is not None:
                on_conflict()
            if attempts is not None and conflicts >= attempts:
                raise
