"""Group commit: concurrent writes go out together, in order, each caller told its own fate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from service.group_commit import GroupCommit, WriteInterrupted


class Store:
    """A write_many that takes a while, records each batch, and can be made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.written: list[int] = []
        self.fail_on: set[int] = set()
        self.release = asyncio.Event()
        self.release.set()

    async def write_many(self, items: Sequence[int]) -> None:
        self.batches.append(list(items))
        await self.release.wait()
        await asyncio.sleep(0.01)
        if self.fail_on & set(items):
            raise ConnectionError("redis went away")
        self.written.extend(items)


async def test_writes_asked_for_meanwhile_go_out_in_one_batch_in_order() -> None:
    store = Store()
    commits = GroupCommit(store.write_many)
    done: list[int] = []

    async def write(n: int) -> None:
        await commits.write(n)
        assert n in store.written  # returned only once its own write was made
        done.append(n)

    await asyncio.gather(*(write(n) for n in range(10)))
    # The first goes alone (nothing queued yet); the nine asked while it was out, together.
    assert store.batches == [[0], list(range(1, 10))]
    assert store.written == list(range(10))
    assert sorted(done) == list(range(10))


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_goes_on() -> None:
    store = Store()
    store.fail_on = {3}
    commits = GroupCommit(store.write_many)
    store.release.clear()
    first = asyncio.create_task(commits.write(0))
    await asyncio.sleep(0)
    batch = [asyncio.create_task(commits.write(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    store.release.set()
    await first
    results = await asyncio.gather(*batch, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    await commits.write(4)
    assert store.batches == [[0], [1, 2, 3], [4]]
    assert store.written == [0, 4]


async def test_a_writer_cancelled_mid_write_spares_what_was_asked_after() -> None:
    store = Store()
    commits = GroupCommit(store.write_many)
    store.release.clear()
    first = asyncio.create_task(commits.write(0))
    await asyncio.sleep(0)
    second = asyncio.create_task(commits.write(1))
    await asyncio.sleep(0)
    first.cancel()  # mid-write: whether 0 was written is not known
    with pytest.raises(asyncio.CancelledError):
        await first
    store.release.set()
    await second  # asked for after: written by the next batch
    assert store.batches == [[0], [1]]
    assert store.written == [1]


async def test_the_batch_of_a_writer_cancelled_mid_write_is_told_it_was_interrupted() -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    batches: list[list[int]] = []

    async def write_many(items: Sequence[int]) -> None:
        batches.append(list(items))
        if len(batches) == 1:
            await asyncio.sleep(0.01)  # the first batch: 1 and 2 queue up meanwhile
            return
        started.set()
        await never.wait()  # the second batch hangs until its writer is cancelled

    commits = GroupCommit(write_many)
    first = asyncio.create_task(commits.write(0))
    await asyncio.sleep(0)
    leader, follower = (asyncio.create_task(commits.write(n)) for n in (1, 2))
    await first
    await started.wait()
    assert batches == [[0], [1, 2]]  # 1 writes the batch that carries 2
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    with pytest.raises(WriteInterrupted):
        await follower
