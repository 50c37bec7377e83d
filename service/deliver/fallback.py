"""Fallback receivers: what one receiver could not deliver, queued for the one it names.

When a delivery fails for good (its last attempt failed, or a final answer), the sender queues
the same transitions as new durable deliveries to ``fallback``. Their ids are derived from the
failed delivery's id, so dead-lettering it again (a crash and a retry, a replay that fails
once more) never queues them twice. A receiver that takes one alert per delivery (a webhook,
an incident tool: ``ONE_ALERT_PER_DELIVERY``) gets one delivery per transition, anything else
one message with all of them; a digest goes over as the same digest.

Usage::

    for copy in fallback_deliveries(failed, "backup", kind="webhook", now=now): ...
"""

from __future__ import annotations

from datetime import datetime

from service.deliver.deliveries import Delivery
from service.deliver.receivers import ONE_ALERT_PER_DELIVERY

__all__ = ["fallback_deliveries"]


def fallback_deliveries(
    failed: Delivery, fallback: str, *, kind: str, now: datetime
) -> list[Delivery]:
    """The deliveries to ``fallback`` that carry what ``failed`` could not deliver."""
    note = f"fallback for {failed.id}: {failed.note}".strip().rstrip(":")
    if kind not in ONE_ALERT_PER_DELIVERY or len(failed.transitions) <= 1:
        batches = [(f"{fallback}:{failed.id}", failed.transitions)]
    else:
        batches = [(f"{fallback}:{failed.id}/{t.transition_id}", [t]) for t in failed.transitions]
    return [
        Delivery.new(
            delivery_id=delivery_id,
            receiver=fallback,
            transitions=transitions,
            now=now,
            repeat=failed.repeat,
            note=note,
            digest=failed.digest,
        )
        for delivery_id, transitions in batches
    ]
