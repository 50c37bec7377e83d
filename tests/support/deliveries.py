"""What a chaos run must have delivered to its webhook sink, whatever it did to Redis: each
advertiser's low and exhausted alerts fired and resolved, each transition under one
webhook-id however often it was sent (receivers drop repeats by id)."""

from __future__ import annotations

from collections import Counter

from tests.support.receiver import WebhookSink


def assert_each_transition_once(sink: WebhookSink, advertisers: int) -> None:
    """Every request verified, one webhook-id per transition, and the four balance
    transitions of each of ``advertisers`` accounts among them."""
    ids: dict[tuple[str, str], set[str]] = {}
    for received in sink.received:
        assert received.payload is not None, "every delivery carries a valid signature"
        key = (received.payload["data"]["alert_id"], received.payload["data"]["status"])
        ids.setdefault(key, set()).add(received.headers["webhook-id"])
    assert all(len(v) == 1 for v in ids.values()), "a transition was notified twice"
    unique = {(p["data"]["alert_id"], p["data"]["status"]): p for p in sink.payloads()}
    kinds = Counter((p["type"], p["data"]["status"]) for p in unique.values())
    assert kinds == {
        ("credit.low", "firing"): advertisers,
        ("credit.exhausted", "firing"): advertisers,
        ("credit.low", "resolved"): advertisers,
        ("credit.exhausted", "resolved"): advertisers,
    }
