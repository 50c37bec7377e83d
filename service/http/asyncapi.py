"""The AsyncAPI document of creditwatch's streams, from FastStream's own generator.

The snapshot stream carries ``workers.snapshots.Snapshot`` entries, the alerts stream
``service.alerts.AlertTransition`` entries; both are declared as documented publishers so the
document carries their JSON schemas.

Usage::

    document = asyncapi_document(broker, settings.streams)   # a JSON-able dict
"""

from __future__ import annotations

from typing import Any

from faststream.redis import RedisBroker
from faststream.specification import AsyncAPI

from config.settings import StreamSettings
from service.alerts import AlertTransition
from workers.snapshots import Snapshot

__all__ = ["asyncapi_document", "declare_streams"]


def declare_streams(broker: RedisBroker, streams: StreamSettings) -> None:
    """Declare the two streams' publishers with their schemas (for the document only)."""
    broker.publisher(
        stream=streams.snapshots,
        title=streams.snapshots,
        description="Observed facts from the TikTok API, one entry per account and poll.",
        schema=Snapshot,
    )
    broker.publisher(
        stream=streams.alerts,
        title=streams.alerts,
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
    return spec.to_specification().to_jsonable()
