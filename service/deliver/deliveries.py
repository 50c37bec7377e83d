"""Deliveries: one message to one receiver, with every attempt it took, kept in Redis.

A delivery has a stable id (``<receiver>:<transition id>`` for a webhook, ``<receiver>:
<group>:<n>`` for a grouped message), so creating it twice creates it once (``SET NX``). Its
document holds the transitions it carries, so a restart loses nothing; a sorted set of due
times says when it is next tried. A sender *claims* due deliveries by moving their due time
a lease ahead in one script: two replicas never attempt the same delivery at once, and a
sender that dies mid-attempt leaves it to be retried when the lease runs out.

Keys (under the stream prefix): ``delivery:<id>`` (JSON), ``deliveries:due`` (id -> due
time), ``deliveries:index`` (id -> creation time, the history) and ``deliveries:failed``.

Usage::

    store = DeliveryStore(redis, settings.streams, history=timedelta(days=30))
    await store.create(Delivery.new(receiver="ops", transitions=[t], now=now, delivery_id=...))
    for delivery in await store.claim(now, lease=timedelta(seconds=60)): ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from config.redis_text import decoded
from config.settings import StreamSettings
from service.deliver.clock import to_epoch
from service.deliver.digest import Digest
from service.group_commit import GroupCommit
from service.optimistic import Decision, commit
from service.redis_records import read_record
from service.write_batch import WriteBatch
from workers.contract.alerts import AlertTransition

__all__ = ["Attempt", "Delivery", "DeliveryStatus", "DeliveryStore", "message_id"]

DeliveryStatus = Literal["pending", "delivered", "failed", "silenced", "inhibited"]


def message_id(delivery_id: str) -> str:
    """The Standard Webhooks message id of one delivery (stable across its retries)."""
    return "msg_" + hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


class Attempt(BaseModel):
    """One try: when, what came back (an HTTP or SMTP code when there was one) and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    result: Literal["delivered", "retry", "failed", "gone", "throttled"]
    status_code: int | None = None
    error: str | None = None


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    receiver: str
    transitions: list[AlertTransition]
    repeat: bool = False  # a reminder that these are still firing
    status: DeliveryStatus = "pending"
    created_at: AwareDatetime
    next_attempt_at: AwareDatetime | None = None
    attempts: list[Attempt] = []
    # Attempts made before the last replay: the retry schedule starts over after a replay.
    replayed_after: int = 0
    note: str = ""
    # A digest instead of alerts (``transitions`` is then empty).
    digest: Digest | None = None

    @property
    def message_id(self) -> str:
        return message_id(self.id)

    @property
    def attempts_this_round(self) -> int:
        return len(self.attempts) - self.replayed_after

    @classmethod
    def new(
        cls,
        *,
        delivery_id: str,
        receiver: str,
        transitions: Sequence[AlertTransition],
        now: datetime,
        repeat: bool = False,
        status: DeliveryStatus = "pending",
        note: str = "",
        digest: Digest | None = None,
    ) -> Delivery:
        return cls(
            id=delivery_id,
            receiver=receiver,
            transitions=list(transitions),
            repeat=repeat,
            status=status,
            created_at=now,
            next_attempt_at=now if status == "pending" else None,
            note=note,
            digest=digest,
        )


# Take the due deliveries and push each one's due time a lease ahead, atomically.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class DeliveryStore:
    def __init__(self, redis: Redis, streams: StreamSettings, *, history: timedelta) -> None:
        self._redis = redis
        self._streams = streams
        self._history = history
        self._claim = redis.register_script(_CLAIM)
        self._saves = GroupCommit(self._save_many)
        self.due_key = streams.keyspace.deliveries_due()
        self.index_key = streams.keyspace.deliveries_index()
        self.failed_key = streams.keyspace.deliveries_failed()

    def key(self, delivery_id: str) -> str:
        return self._streams.keyspace.delivery(delivery_id)

    def queue(
        self,
        batch: WriteBatch,
        delivery: Delivery,
        *,
        due: datetime | None = None,
        trim: bool = True,
    ) -> None:
        """Add the writes that create ``delivery`` (once) to a batch for a MULTI; a pending one
        is queued as due at ``due`` (no later than its creation), else at its creation.
        ``trim`` False leaves the history's trim to the caller (``trim_history`` once for a
        transaction that queues many)."""
        batch.set(self.key(delivery.id), delivery.model_dump_json(), nx=True)
        batch.zadd(self.index_key, {delivery.id: to_epoch(delivery.created_at)}, nx=True)
        if trim:
            self.trim_history(batch, delivery.created_at)
        if delivery.status == "pending":
            # A delivery already made and done is re-queued here only if this create was a
            # duplicate; the sender sees its status and drops it without sending.
            due_at = min(due or delivery.created_at, delivery.created_at)
            batch.zadd(self.due_key, {delivery.id: to_epoch(due_at)}, nx=True)
        else:
            batch.expire(self.key(delivery.id), self._history)

    def history_start(self, now: datetime) -> datetime:
        """What the history keeps begins here: older documents have expired."""
        return now - self._history

    def trim_history(self, batch: WriteBatch, now: datetime) -> None:
        """The history index forgets what is older than the documents it points to."""
        batch.zremrangebyscore(self.index_key, "-inf", to_epoch(self.history_start(now)))

    async def create(self, delivery: Delivery) -> None:
        batch = WriteBatch()
        self.queue(batch, delivery)
        await batch.run(self._redis, self._streams.keyspace.slot_key())

    async def get(self, delivery_id: str) -> Delivery | None:
        # An unreadable one is treated as gone, and dropped from the queue.
        return read_record(Delivery, await self._redis.get(self.key(delivery_id)))

    async def get_many(self, delivery_ids: Sequence[str]) -> dict[str, Delivery | None]:
        """``get`` of each, in one round trip (a page of claimed deliveries)."""
        if not delivery_ids:
            return {}
        raws = await self._redis.mget([self.key(i) for i in delivery_ids])
        return {i: read_record(Delivery, raw) for i, raw in zip(delivery_ids, raws, strict=True)}

    async def claim(self, now: datetime, *, lease: timedelta, limit: int = 50) -> list[str]:
        """Ids of due deliveries, now leased to the caller."""
        ids = await self._claim(
            keys=[self.due_key],
            args=[repr(to_epoch(now)), repr(to_epoch(now + lease)), limit],
        )
        return [decoded(i) for i in ids]

    async def save(self, delivery: Delivery, *, due: datetime | None) -> None:
        """Write the delivery; ``due`` None takes it off the queue (done, failed for good).
        Returns once written, in a MULTI with the saves of other callers that came meanwhile
        (a sender records many attempts at once: one round trip for them, not one each)."""
        await self._saves.write((delivery, due))

    async def _save_many(self, saves: Sequence[tuple[Delivery, datetime | None]]) -> None:
        batch = WriteBatch()
        for delivery, due in saves:
            document = delivery.model_dump_json()
            if due is not None:
                batch.set(self.key(delivery.id), document)  # queued again: kept (no TTL)
                batch.zadd(self.due_key, {delivery.id: to_epoch(due)})
                batch.zrem(self.failed_key, delivery.id)
            else:
                batch.set(self.key(delivery.id), document, ex=self._history)
                batch.zrem(self.due_key, delivery.id)
            if delivery.status == "failed":
                last = delivery.attempts[-1].at if delivery.attempts else delivery.created_at
                batch.zadd(self.failed_key, {delivery.id: to_epoch(last)})
        await batch.run(self._redis, self._streams.keyspace.slot_key())

    async def release(self, delivery_ids: Sequence[str], now: datetime) -> None:
        """Give claimed deliveries back (due now) without waiting for their lease to run out."""
        if delivery_ids:
            await self._redis.zadd(
                self.due_key, dict.fromkeys(delivery_ids, to_epoch(now)), xx=True
            )

    async def drop_from_queue(self, delivery_id: str) -> None:
        await self._redis.zrem(self.due_key, delivery_id)

    async def queue_size(self) -> int:
        return int(await self._redis.zcard(self.due_key))

    async def history(self, *, limit: int, failed_only: bool = False) -> list[Delivery]:
        """Newest first; entries whose document has expired are pruned from the index."""
        index = self.failed_key if failed_only else self.index_key
        ids = await self._redis.zrevrange(index, 0, max(limit, 1) - 1)
        out: list[Delivery] = []
        for raw_id in ids:
            delivery_id = decoded(raw_id)
            delivery = await self.get(delivery_id)
            if delivery is None:
                await self._redis.zrem(index, delivery_id)
                continue
            out.append(delivery)
        return out

    async def failed_ids(self) -> list[str]:
        ids = cast("list[Any]", await self._redis.zrange(self.failed_key, 0, -1))
        return [decoded(i) for i in ids]

    async def replay(self, delivery_id: str, now: datetime) -> Delivery | None:
        """Send again from the start of the schedule; None if there is no such delivery."""
        key = self.key(delivery_id)

        async def decide(pipe: Pipeline) -> Decision[Delivery | None]:
            raw = await pipe.get(key)
            if raw is None:
                return Decision(None)
            current = Delivery.model_validate_json(raw)
            replayed = current.model_copy(
                update={
                    "status": "pending",
                    "next_attempt_at": now,
                    "replayed_after": len(current.attempts),
                    "note": f"replayed at {now.isoformat(timespec='seconds')}",
                }
            )

            async def writes(pipe: Pipeline) -> None:
                pipe.set(key, replayed.model_dump_json())
                pipe.persist(key)
                pipe.zadd(self.due_key, {delivery_id: to_epoch(now)})
                pipe.zrem(self.failed_key, delivery_id)

            return Decision(replayed, writes)

        return await commit(self._redis, [key], decide)
