"""The envelope of every stream entry: FastStream's binary format, written and read here.

Every writer of our streams (the poller's publisher, the detectors' alert commits, FastStream's
own ``broker.publish``) puts one field in an entry, ``__data__``, holding the payload wrapped
in FastStream's ``BinaryMessageFormatV1``; every reader that takes entries straight from Redis
(batch reads, the alert history, benchmarks) takes the payload out here.

Usage::

    pipe.xadd(stream, await stream_entry(snapshot.to_json(), snapshot.snapshot_id))
    payload = payload_of(fields)        # the JSON bytes again
"""

from __future__ import annotations

from faststream.redis.parser import BinaryMessageFormatV1
from redis.typing import EncodableT, FieldT

__all__ = ["DATA_FIELD", "payload_of", "stream_entry"]

# The one field FastStream (and so every writer of our streams) puts the payload in.
DATA_FIELD = b"__data__"


async def stream_entry(payload: bytes, correlation_id: str) -> dict[FieldT, EncodableT]:
    """The fields of a stream entry as FastStream writes them, for a pipelined XADD.

    FastStream's publisher plumbing costs more per message than the XADD itself
    (bench/RESULTS.md); its envelope is built here and written straight into a pipeline.
    """
    envelope = await BinaryMessageFormatV1.encode(
        message=payload, reply_to=None, headers=None, correlation_id=correlation_id
    )
    return {DATA_FIELD: envelope}


def payload_of(fields: dict[bytes, bytes]) -> bytes:
    """Our JSON payload of an entry, with FastStream's envelope (if any) taken off."""
    payload, _ = BinaryMessageFormatV1.parse(fields.get(DATA_FIELD, b""))
    return payload
