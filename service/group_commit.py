"""Group commit: writes asked for by concurrent tasks, made together in one call.

Under load many tasks of one process each have a small write to make at nearly the same time
(a sender recording the attempts it made side by side). Made one by one, each is a Redis round
trip of its own, and the round trips, not the writes, are the cost. Here one write is under
way at a time; the writes asked for meanwhile queue up, and the next caller to go writes
every one queued, in the order they were asked for. Each caller returns once its own write
was made, or raises what the write that carried it raised: as if it had made it alone.

Cancelled while waiting, a caller's write may still be made by the next batch (it was asked
for); cancelled while writing, its batch is neither known made nor known not made, as with a
write of its own, and the batch's other callers are told so (``WriteInterrupted``).

Usage::

    saves = GroupCommit(write_many)            # write_many(items) -> None
    await saves.write(item)                    # returns once item was written
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "WriteInterrupted"]

T = TypeVar("T")


class WriteInterrupted(RuntimeError):
    """The batch carrying this write was cancelled mid-way: it may or may not be made."""


@dataclass(eq=False, slots=True)
class _Asked(Generic[T]):
    item: T
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    def __init__(self, write_many: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write_many = write_many
        self._queued: list[_Asked[T]] = []
        self._writing = asyncio.Lock()

    async def write(self, item: T) -> None:
        asked = _Asked(item)
        self._queued.append(asked)
        async with self._writing:
            if not asked.done:  # no batch before took it: this caller writes what is queued
                batch, self._queued = self._queued, []
                await self._write(batch)
        if asked.error is not None:
            raise asked.error

    async def _write(self, batch: list[_Asked[T]]) -> None:
        try:
            await self._write_many([asked.item for asked in batch])
        except Exception as error:
            for asked in batch:
                asked.done, asked.error = True, error
            return
        except BaseException:
            for asked in batch:
                asked.done, asked.error = True, WriteInterrupted("the write was cancelled")
            raise
        for asked in batch:
            asked.done = True
