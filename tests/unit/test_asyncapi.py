"""The AsyncAPI document names both streams and carries the snapshot and alert schemas."""

from __future__ import annotations

import json

from faststream.redis import RedisBroker

from config.settings import StreamSettings
from service.http.asyncapi import asyncapi_document, declare_streams


def test_document_describes_snapshots_and_alerts() -> None:
    broker = RedisBroker("redis://127.0.0.1:6379")
    streams = StreamSettings(prefix="cw")
    declare_streams(broker, streams)
    document = asyncapi_document(broker)
    assert document["asyncapi"].startswith("3.")
    assert {"cw:snapshots", "cw:alerts"} <= set(document["channels"])
    schemas = document["components"]["schemas"]
    assert "AccountBalanceSnapshot" in schemas
    assert "AlertTransition" in schemas
    alert = schemas["AlertTransition"]["properties"]
    assert {"alert_id", "kind", "status", "severity", "values", "starts_at"} <= set(alert)


def test_document_names_streams_but_not_where_redis_is() -> None:
    broker = RedisBroker("redis://:hunter2secret@10.1.2.3:6390/4")
    declare_streams(broker, StreamSettings(prefix="cw"))
    text = json.dumps(asyncapi_document(broker))
    assert "cw:snapshots" in text
    for leak in ("10.1.2.3", "6390", "hunter2secret", '"servers"'):
        assert leak not in text
