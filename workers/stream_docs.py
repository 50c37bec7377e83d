"""Streams declared on a FastStream broker only so that its AsyncAPI document describes them.

Both roles declare theirs (the workers the snapshot streams they publish to, the service every
stream it documents at ``/asyncapi``): one publisher per stream, titled by its name.

Usage::

    document_streams(broker, keyspace.snapshot_streams(), description="…", schema=Snapshot)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faststream.redis import RedisBroker

__all__ = ["document_streams"]


def document_streams(
    broker: RedisBroker, streams: Iterable[str], *, description: str, schema: Any
) -> None:
    """Declare a publisher of entries of ``schema`` on each of ``streams``."""
    for stream in streams:
        broker.publisher(stream=stream, title=stream, description=description, schema=schema)
