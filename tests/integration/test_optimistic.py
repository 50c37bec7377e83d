"""The optimistic transaction helper on real Redis: a decision's writes commit whole; a
concurrent change of a watched key makes it read and decide again; a bounded commit gives
up with WatchError; a decision without writes writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from service.optimistic import Decision, commit

Decide = Callable[[Pipeline], Awaitable[Decision[int]]]


def _increment(redis: Redis, key: str, *, interfere: int) -> tuple[list[int], Decide]:
    """A decision adding one to ``key``, whose first ``interfere`` reads are followed by
    another client's write (so the EXEC after them fails); returns the values it read."""
    seen: list[int] = []

    async def decide(pipe: Pipeline) -> Decision[int]:
        value = int(await pipe.get(key) or 0)
        seen.append(value)
        if len(seen) <= interfere:
            await redis.incrby(key, 10)  # another client, between the WATCH and the EXEC

        async def writes(pipe: Pipeline) -> None:
            pipe.set(key, value + 1)

        return Decision(value + 1, writes)

    return seen, decide


async def test_a_conflict_reads_again_and_the_last_decision_commits(
    redis_client: Redis, prefix: str
) -> None:
    key = f"{prefix}:counter"
    conflicts: list[None] = []
    seen, decide = _increment(redis_client, key, interfere=2)
    result = await commit(redis_client, [key], decide, on_conflict=lambda: conflicts.append(None))
    assert seen == [0, 10, 20]
    assert result == 21
    assert int(await redis_client.get(key) or 0) == 21
    assert len(conflicts) == 2


async def test_a_bounded_commit_gives_up_with_watch_error(redis_client: Redis, prefix: str) -> None:
    key = f"{prefix}:counter"
    seen, decide = _increment(redis_client, key, interfere=5)
    with pytest.raises(WatchError):
        await commit(redis_client, [key], decide, attempts=2)
    assert seen == [0, 10]
    assert int(await redis_client.get(key) or 0) == 20  # only the other client's writes


async def test_a_decision_without_writes_writes_nothing(redis_client: Redis, prefix: str) -> None:
    key = f"{prefix}:absent"

    async def decide(pipe: Pipeline) -> Decision[str | None]:
        assert await pipe.get(key) is None
        return Decision(None)

    assert await commit(redis_client, [key], decide) is None
    assert not await redis_client.exists(key)
