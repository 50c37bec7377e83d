"""PagerDuty Events API v2: an alert episode is a PagerDuty incident, keyed by its alert id.

Firing sends ``trigger``, resolved sends ``resolve``, both with ``dedup_key`` = the alert id,
so a retried trigger is folded into the same incident and the resolve closes it. The payload
follows https://developer.pagerduty.com/docs/events-api-v2/trigger-events/: ``summary`` (at
most 1024 characters), ``source``, ``severity`` (critical, warning, info as ours),
``custom_details`` (the alert's values), ``links`` to the account's status page and its
Promotions page. PagerDuty answers 202; 400 ("invalid event") is final and dead-lettered
with PagerDuty's reason; 429 and 5xx are retried.

A grouped delivery sends one event per alert, in order; a retry resends them all, which the
dedup key makes harmless.

Usage::

    receiver = PagerDutyReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.notify import PagerDutyReceiverSettings
from service.deliver.clip import clip
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver
from service.deliver.links import AlertLinks
from workers.contract.alerts import AlertTransition

__all__ = ["PagerDutyReceiver", "event"]

SUMMARY_MAX = 1024
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def event(transition: AlertTransition, routing_key: str, links: AlertLinks) -> dict[str, Any]:
    """The Events API v2 body for one transition."""
    if transition.status == "resolved":
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": transition.alert_id,
        }
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": transition.alert_id,
        "payload": {
            "summary": clip(transition.summary, SUMMARY_MAX),
            "source": f"tiktok-advertiser-{transition.advertiser_id}",
            "severity": SEVERITY[transition.severity],
            "timestamp": transition.starts_at.isoformat(),
            "component": transition.advertiser_name or transition.advertiser_id,
            "group": f"business-center-{transition.bc_id}",
            "class": transition.kind,
            "custom_details": {
                **transition.values,
                "currency": transition.currency,
                "advertiser_id": transition.advertiser_id,
                "bc_id": transition.bc_id,
            },
        },
        "links": [{"href": href, "text": text} for text, href in links.of_alert(transition)],
        "client": "creditwatch",
    }


class PagerDutyReceiver(JsonApiReceiver[PagerDutyReceiverSettings]):
    kind = "pagerduty"

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        key = self.settings.routing_key.get_secret_value()
        return [(self.settings.url, event(t, key, self.links)) for t in delivery.transitions]
