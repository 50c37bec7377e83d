"""WriteBatch on real Redis: every write runs, in order, with redis-py's meaning of each
option; in a MULTI whose watched key changed, none of them runs; a script Redis has lost
(a restart, SCRIPT FLUSH) is loaded again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service.write_batch import WriteBatch


async def _run(redis: Redis, batch: WriteBatch) -> None:
    await batch.run(redis, "any")  # one server: every key is of its one "slot"


async def test_each_write_does_what_its_command_does(redis_client: Redis, prefix: str) -> None:
    doc, kept, due, tags, hash_ = (f"{prefix}:{n}" for n in ("doc", "kept", "due", "tags", "h"))
    await redis_client.set(kept, "old")
    await redis_client.hset(hash_, mapping={"gone": "1", "stays": "2"})
    batch = WriteBatch()
    batch.set(doc, "first", ex=timedelta(hours=1))
    batch.set(doc, "second", nx=True)  # already there: not written
    batch.set(kept, "new")  # a plain SET replaces
    batch.zadd(due, {"a": 1767225600.125, "b": 2.5})
    batch.zadd(due, {"a": 9.0}, nx=True)  # a is there: its score stays
    batch.zrem(due, "b")
    batch.sadd(tags, "x", "y")
    batch.hset(hash_, {"seq": 3, "at": "1.5"})
    batch.hdel(hash_, "gone")
    await _run(redis_client, batch)

    assert await redis_client.get(doc) == b"first"
    assert 3500 < await redis_client.ttl(doc) <= 3600
    assert await redis_client.get(kept) == b"new"
    # The score exactly as given: a float's repr, not a rounded one.
    assert await redis_client.zrange(due, 0, -1, withscores=True) == [(b"a", 1767225600.125)]
    assert await redis_client.smembers(tags) == {b"x", b"y"}
    assert await redis_client.hgetall(hash_) == {b"stays": b"2", b"seq": b"3", b"at": b"1.5"}


async def test_writes_run_in_the_order_they_were_added(redis_client: Redis, prefix: str) -> None:
    key, index = f"{prefix}:doc", f"{prefix}:index"
    batch = WriteBatch()
    batch.set(key, "a")
    batch.delete(key)
    batch.set(key, "b", nx=True)
    batch.expire(key, 60)
    batch.zadd(index, {"old": 10.0, "new": 20.0})
    batch.zremrangebyscore(index, "-inf", 15.0)
    await _run(redis_client, batch)
    assert await redis_client.get(key) == b"b"
    assert 0 < await redis_client.ttl(key) <= 60
    assert await redis_client.zrange(index, 0, -1) == [b"new"]


async def test_in_a_failed_multi_nothing_is_written(redis_client: Redis, prefix: str) -> None:
    watched, written = f"{prefix}:watched", f"{prefix}:written"
    batch = WriteBatch()
    batch.set(written, "1")
    async with redis_client.pipeline(transaction=True) as pipe:
        await pipe.watch(watched)
        await redis_client.set(watched, "changed")  # another client, before the EXEC
        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await batch.queue_on(pipe)
        with pytest.raises(WatchError):
            await pipe.execute()
    assert await redis_client.exists(written) == 0


async def test_a_lost_script_is_loaded_again(redis_client: Redis, prefix: str) -> None:
    key = f"{prefix}:doc"
    first = WriteBatch()
    first.set(key, "1")
    await _run(redis_client, first)
    await redis_client.script_flush()
    again = WriteBatch()
    again.set(key, "2")
    await _run(redis_client, again)
    assert await redis_client.get(key) == b"2"


async def test_an_empty_batch_sends_nothing(redis_client: Redis) -> None:
    batch = WriteBatch()
    assert not batch
    async with redis_client.pipeline(transaction=True) as pipe:
        await batch.queue_on(pipe)
        assert len(pipe) == 0


async def test_a_write_of_many_members_goes_in_parts(redis_client: Redis, prefix: str) -> None:
    """Past what one script ``unpack`` takes (about 8,000 values): a flush of a group holding
    10,000 pending transitions."""
    pending, due = f"{prefix}:pending", f"{prefix}:due"
    fields = [f"t{n}" for n in range(10_000)]
    await redis_client.hset(pending, mapping=dict.fromkeys([*fields, "kept"], "x"))
    batch = WriteBatch()
    batch.hdel(pending, *fields)
    batch.zadd(due, {f"d{n}": float(n) for n in range(10_000)}, nx=True)
    batch.hset(f"{prefix}:wide", {f"f{n}": n for n in range(10_000)})
    await _run(redis_client, batch)
    assert await redis_client.hgetall(pending) == {b"kept": b"x"}
    assert await redis_client.zcard(due) == 10_000
    assert await redis_client.zscore(due, "d9999") == 9999.0
    assert await redis_client.hlen(f"{prefix}:wide") == 10_000


async def test_text_arrives_byte_for_byte(redis_client: Redis, prefix: str) -> None:
    """A delivery document carries advertisers' names: any text, quotes and escapes too."""
    text = 'Shop "Ünïcode" 🛒 \\n tab\t nul\x00 end'
    batch = WriteBatch()
    batch.set(f"{prefix}:doc", text)
    batch.hset(f"{prefix}:h", {"name": text})
    await _run(redis_client, batch)
    assert await redis_client.get(f"{prefix}:doc") == text.encode()
    assert await redis_client.hget(f"{prefix}:h", "name") == text.encode()
