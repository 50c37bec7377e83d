"""The Redis stream plumbing: consumer groups and the two subscribers of each consumed stream.

Each stream a role consumes gets a *live* subscriber (``XREADGROUP >``) and a *reclaiming*
one (``XAUTOCLAIM``) in the same group. An entry whose handler raised, or whose consumer died,
stays pending; once it has been idle for ``reclaim_idle_ms`` the reclaiming subscriber takes
it over and runs the handler again. An entry delivered more than ``max_deliveries`` times is
set aside on the dead-letter stream instead of cycling forever.

Usage::

    await ensure_group(redis, settings.streams.snapshots, DETECTORS)
    consume(broker, stream=..., group=DETECTORS, consumer="host-1", handle=detector.handle, ...)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import structlog
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from config.redis_text import decoded
from service import metrics
from service.deadletter import DeadLetters
from workers.contract.envelope import payload_of
from workers.stopping import cancel_and_wait

__all__ = [
    "DETECTORS",
    "NOTIFIERS",
    "BatchHandler",
    "Entry",
    "GroupKeeper",
    "Handler",
    "batch_entries",
    "consume",
    "ensure_group",
    "read_entries",
]

log = structlog.get_logger(__name__)

DETECTORS = "detectors"
NOTIFIERS = "notifiers"

Handler = Callable[[bytes, str], Awaitable[object]]
# A batch handler: (payload, entry id) pairs in stream order.
BatchHandler = Callable[[Sequence[tuple[bytes, str]]], Awaitable[object]]
# FastStream's stream subscriber; typed loosely because its class is internal.
Subscriber = Any


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create the group at the start of the stream, so entries written before it are read.

    FastStream would create it at ``$`` (only new entries): snapshots published while the
    service was down would be skipped.
    """
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


Entry = tuple[bytes, dict[bytes, bytes]]


async def read_entries(
    redis: Redis, stream: str, *, count: int, newest_first: bool = False
) -> list[Entry]:
    """Up to ``count`` entries of ``stream`` as (id, fields), typed (redis-py's are loose)."""
    if newest_first:
        rows = await redis.xrevrange(stream, count=count)
    else:
        rows = await redis.xrange(stream, count=count)
    return cast("list[Entry]", rows or [])


def _entry_id(message: RedisStreamMessage) -> str:
    ids = message.raw_message.get("message_ids") or [b""]
    return decoded(ids[0])


_ENTRIES = "creditwatch_entries"


async def _ids_only(
    message: Mapping[str, Any],
    original: Callable[[Mapping[str, Any]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """FastStream's batch parser decodes every entry and re-encodes the batch as one JSON body
    before the handler runs; one hostile entry would fail the whole batch there. The handler
    decodes the entries itself, so the parser is handed the ids only (enough to ack)."""
    return await original({**message, "data": [], _ENTRIES: message["data"]})


async def batch_entries(message: StreamMessage[Any]) -> list[tuple[bytes, str]]:
    """The batch's decoder: (payload, entry id) of each entry read through ``_ids_only``,
    what its handler is called with. A handler taking the message itself gets it through
    FastStream's context, whose lookup fast_depends runs in a worker thread: a thread hop
    per batch, and the GIL passed back and forth under load."""
    raw = cast("Mapping[str, Any]", message.raw_message)
    return [
        (payload_of(fields), decoded(entry_id))
        for entry_id, fields in zip(raw["message_ids"], raw[_ENTRIES], strict=True)
    ]


def consume(
    broker: RedisBroker,
    *,
    stream: str,
    group: str,
    consumer: str,
    handle: Handler,
    dead_letters: DeadLetters,
    reclaim_idle_ms: int,
    handle_batch: BatchHandler | None = None,
    max_deliveries: int = 5,
    polling_ms: int = 100,
    read_count: int = 50,
) -> list[Subscriber]:
    """Register the live and the reclaiming subscriber of ``stream`` for ``group``.

    With ``handle_batch`` the live subscriber reads up to ``read_count`` entries at a time
    and hands them over together (acked together once it returns); reclaimed entries always
    go one by one to ``handle``, so a poison entry is isolated from the rest of its batch.
    """
    reclaim = broker.subscriber(
        stream=StreamSub(
            stream,
            group=group,
            consumer=f"{consumer}:reclaim",
            min_idle_time=reclaim_idle_ms,
            polling_interval=max(polling_ms, reclaim_idle_ms // 4),
        ),
        title=f"{stream}:{group}:reclaim",
    )
    # A bounded read: entries read but not yet handled count as pending, and a consumer
    # hoarding thousands would see them reclaimed by its peers before it got to them.
    read: dict[str, Any] = {
        "group": group,
        "consumer": consumer,
        "polling_interval": polling_ms,
        "max_records": read_count,
    }
    title = f"{stream}:{group}"
    live: list[Subscriber]
    if handle_batch is None:
        one = broker.subscriber(stream=StreamSub(stream, **read), title=title)

        @one
        async def on_entry(message: RedisStreamMessage) -> None:
            # An exception leaves the entry pending: the reclaiming subscriber retries it later.
            await handle(message.body, _entry_id(message))

        live = [one]
    else:
        run_batch = handle_batch
        batch = broker.subscriber(
            stream=StreamSub(stream, batch=True, **read),
            parser=_ids_only,
            decoder=batch_entries,
            title=title,
        )

        @batch
        async def on_batch(entries: Any) -> None:
            # An exception leaves the whole batch pending: reclaimed entry by entry later.
            await run_batch(cast("list[tuple[bytes, str]]", entries))

        live = [batch]

    @reclaim
    async def on_stale_entry(message: RedisStreamMessage) -> None:
        entry_id = _entry_id(message)
        deliveries = await message.get_delivery_count()
        if deliveries > max_deliveries:
            await dead_letters.put(
                source=stream,
                reason="too_many_deliveries",
                payload=message.body,
                error=f"delivered {deliveries} times without success",
                entry_id=entry_id,
            )
            return
        log.info("stream.reclaimed", stream=stream, group=group, entry_id=entry_id)
        await handle(message.body, entry_id)

    return [*live, reclaim]


class GroupKeeper:
    """Keeps consumer groups and their subscribers alive when Redis loses them.

    A Redis restart without persistence (or a deleted stream) drops the groups; FastStream
    then stops the subscriber for good (NOGROUP). Every ``every_s`` this recreates missing
    groups (from the start of the stream) and restarts stopped subscribers, so the service
    carries on instead of going deaf.
    """

    def __init__(
        self,
        redis: Redis,
        groups: list[tuple[str, str]],
        subscribers: list[Subscriber],
        *,
        every_s: float = 2.0,
    ) -> None:
        self._redis = redis
        self._groups = groups
        self._subscribers = subscribers
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def ensure_groups(self) -> None:
        for stream, group in self._groups:
            await ensure_group(self._redis, stream, group)

    async def check(self) -> int:
        """One round: recreate groups, restart stopped subscribers; returns how many."""
        await self.ensure_groups()
        restarted = 0
        for subscriber in self._subscribers:
            if not subscriber.running:
                await subscriber.start()
                restarted += 1
                metrics.SUBSCRIBERS_RESTARTED.inc()
                log.warning("stream.subscriber_restarted", subscriber=repr(subscriber)[:120])
        return restarted

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.check()
            except RedisError as error:
                # Redis is down: try again next round rather than give up.
                log.warning("stream.keeper_failed", error=str(error))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
