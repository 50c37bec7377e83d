"""Reading stream entries in tests, typed (redis-py's own annotations are loose here)."""

from __future__ import annotations

from typing import cast

from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis

Fields = dict[bytes, bytes]


async def entries(redis: Redis, stream: str) -> list[Fields]:
    """The fields of every entry of ``stream``, oldest first."""
    rows = cast("list[tuple[bytes, Fields]]", await redis.xrange(stream))
    return [fields for _, fields in rows]


def body(fields: Fields) -> bytes:
    """The payload of an entry written through FastStream (its envelope removed)."""
    payload, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
    return payload
