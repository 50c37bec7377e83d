"""Many writes in one script call: one reply for Redis to send and redis-py to read, not one each.

redis-py reads and checks every reply of a pipeline on its own (in a MULTI, each command's
``QUEUED`` too), under a timeout of its own: about 20 us a command on these cores, far more
than Redis takes to run it. Writes whose replies nobody reads (a group flush's, the sender's
records of its attempts) are collected in a ``WriteBatch``, keys apart from arguments, and run
by one EVALSHA queued on the caller's pipeline: inside a MULTI it is as atomic as the commands
it replaces. Every key is declared to the script, so on a Cluster they must all be of one slot,
as in any MULTI.

Usage::

    batch = WriteBatch()
    batch.set(key, document, nx=True)
    batch.zadd(due_key, {delivery_id: 1767225600.0})
    await batch.run(redis, slot_key)     # alone (one EVALSHA), or inside a WATCH/MULTI:
    await batch.queue_on(pipe)           # ... queued with the transaction's other commands
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.slot_owner import owning

__all__ = ["WriteBatch"]

# Each op is [command, index of its key in KEYS, argument, ...], every argument a string.
_RUN = """
local ops = cjson.decode(ARGV[1])
for _, op in ipairs(ops) do
  op[2] = KEYS[op[2]]
  redis.call(unpack(op))
end
return #ops
"""
# Values per command: well under the script's ``unpack`` limit.
_CHUNK = 1000


def _seconds(ttl: int | timedelta) -> str:
    return str(int(ttl.total_seconds()) if isinstance(ttl, timedelta) else ttl)


class WriteBatch:
    """Writes to run together, in the order they were added (each command's redis-py name and
    meaning; their replies are not returned)."""

    __slots__ = ("_keys", "_ops")

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._ops: list[list[str | int]] = []

    def __bool__(self) -> bool:
        return bool(self._ops)

    def _add(self, command: str, key: str, *args: str) -> None:
        index = self._keys.setdefault(key, len(self._keys) + 1)  # KEYS is 1-based
        self._ops.append([command, index, *args])

    def _add_many(
        self,
        command: str,
        key: str,
        items: Sequence[str],
        *,
        width: int = 1,
        options: Sequence[str] = (),
    ) -> None:
        """A variadic command in parts of ``width``-wide items: the script's ``unpack`` takes
        at most about 8,000 values (a group flushing 10,000 pending transitions would fail
        whole)."""
        step = _CHUNK - _CHUNK % width
        for start in range(0, len(items), step):
            self._add(command, key, *options, *items[start : start + step])

    def set(
        self, key: str, value: str, *, nx: bool = False, ex: int | timedelta | None = None
    ) -> None:
        args = [value] + (["NX"] if nx else []) + (["EX", _seconds(ex)] if ex is not None else [])
        self._add("SET", key, *args)

    def expire(self, key: str, ttl: int | timedelta) -> None:
        self._add("EXPIRE", key, _seconds(ttl))

    def delete(self, *keys: str) -> None:
        for key in keys:
            self._add("DEL", key)

    def zadd(self, key: str, mapping: Mapping[str, float], *, nx: bool = False) -> None:
        pairs = [part for member, score in mapping.items() for part in (repr(score), member)]
        self._add_many("ZADD", key, pairs, width=2, options=["NX"] if nx else [])

    def zrem(self, key: str, *members: str) -> None:
        self._add_many("ZREM", key, members)

    def zremrangebyscore(self, key: str, low: str, high: float) -> None:
        self._add("ZREMRANGEBYSCORE", key, low, repr(high))

    def hset(self, key: str, mapping: Mapping[str, str | int]) -> None:
        pairs = [str(part) for item in mapping.items() for part in item]
        self._add_many("HSET", key, pairs, width=2)

    def hdel(self, key: str, *fields: str) -> None:
        self._add_many("HDEL", key, fields)

    def sadd(self, key: str, *members: str) -> None:
        self._add_many("SADD", key, members)

    def _payload(self) -> str:
        return json.dumps(self._ops, ensure_ascii=False)  # UTF-8 as is, not escaped

    async def queue_on(self, pipe: Pipeline) -> None:
        """Queue the whole batch on ``pipe`` as one script call (nothing, if it is empty);
        redis-py loads the script first when Redis does not have it."""
        if self._ops:
            script = pipe.register_script(_RUN)
            await script(keys=list(self._keys), args=[self._payload()], client=pipe)

    async def run(self, redis: Redis, slot_key: str) -> None:
        """Send the batch on the client owning ``slot_key``'s slot (every key must share it)
        as one EVALSHA of its own: a script runs whole, as a MULTI would, and a pipeline
        around it cost a MULTI, an EXEC and redis-py's ``SCRIPT EXISTS`` round trip before
        each. When the slot moved, the slot map is re-read before the error goes on."""
        if not self._ops:
            return
        async with owning(redis, slot_key) as client:
            await client.register_script(_RUN)(keys=list(self._keys), args=[self._payload()])
