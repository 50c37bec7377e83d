"""Reading stream entries in tests, typed (redis-py's own annotations are loose here)."""

from __future__ import annotations

from redis.asyncio import Redis

from service.streams import read_entries
from workers.contract.envelope import payload_of

Fields = dict[bytes, bytes]


async def entries(redis: Redis, stream: str) -> list[Fields]:
    """The fields of every entry of ``stream``, oldest first."""
    return [fields for _, fields in await read_entries(redis, stream, count=1_000_000)]


body = payload_of


async def drained(redis: Redis, stream: str, group: str) -> bool:
    """True once ``group`` has read every entry of ``stream`` and acknowledged them all.

    Written for Redis 6.2 too (the embedded server), which has no ``entries-read``.
    """
    info = await redis.xinfo_stream(stream)
    groups = [g for g in await redis.xinfo_groups(stream) if g["name"] in (group, group.encode())]
    if not groups:
        return False
    return bool(
        groups[0]["last-delivered-id"] == info["last-generated-id"] and groups[0]["pending"] == 0
    )
