"""The AsyncAPI document of creditwatch's streams, from FastStream's own generator.

The snapshot stream carries ``workers.contract.snapshots.Snapshot`` entries, the alerts
stream ``workers.contract.alerts.AlertTransition`` entries; both are declared as documented
publishers so the document carries their JSON schemas. The route is open, so the document
names the streams only: FastStream's ``servers`` section (the Redis host and port) is left out.

Usage::

    document = asyncapi_document(broker, settings.streams)   # a JSON-able dict
"""

from __future__ import annotations

from typing import Any

from faststream.redis import RedisBroker
from faststream.specification import AsyncAPI

from config.settings import StreamSettings
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import Snapshot
from workers.stream_docs import document_streams

__all__ = ["asyncapi_document", "declare_streams"]


def declare_streams(broker: RedisBroker, streams: StreamSettings) -> None:
    """Declare the streams' publishers with their schemas (for the document only): a snapshot
    and an alerts stream per shard."""
    document_streams(
        broker,
        streams.keyspace.snapshot_streams(),
        description="Observed facts from the TikTok API, one entry per account and poll.",
        schema=Snapshot,
    )
    document_streams(
        broker,
        streams.keyspace.alert_streams(),
        description="Alert transitions (firing, resolved) emitted by the detectors.",
        schema=AlertTransition,
    )


def asyncapi_document(broker: RedisBroker, *, version: str = "0.1.0") -> Any:
    spec = AsyncAPI(
        broker,
        title="creditwatch",
        version=version,
        description="Redis streams of creditwatch: snapshots in, alert transitions out.",
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    document.pop("servers", None)
    for channel in document.get("channels", {}).values():
        channel.pop("servers", None)  # references into the section left out
    return document
