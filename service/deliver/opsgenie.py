"""Opsgenie Alert API: an alert episode is an Opsgenie alert, created and closed by alias.

Firing creates the alert (``POST /v2/alerts``) with ``alias`` = the alert id, so a retried
create is de-duplicated by Opsgenie; resolved closes it
(``POST /v2/alerts/{alias}/close?identifierType=alias``). Authentication is the
``GenieKey`` header. Field limits per https://docs.opsgenie.com/docs/alert-api: ``message``
at most 130 characters, ``alias`` 512, ``description`` 15,000, ``details`` a string map.
Priority: critical P1, warning P3, info P5. Opsgenie answers 202; 4xx other than 429 are
final (a bad key or payload), 429 and 5xx are retried.

Usage::

    receiver = OpsgenieReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from config.notify import OpsgenieReceiverSettings
from service.deliver.clip import clip
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver
from service.deliver.links import AlertLinks
from workers.contract.alerts import AlertTransition

__all__ = ["PRIORITY", "OpsgenieReceiver", "close_request", "create_request"]

MESSAGE_MAX = 130
DESCRIPTION_MAX = 15000
PRIORITY = {"critical": "P1", "warning": "P3", "info": "P5"}
SOURCE = "creditwatch"


def create_request(transition: AlertTransition, links: AlertLinks) -> dict[str, Any]:
    """The body of a create-alert request."""
    description = "\n".join(
        [transition.summary, *(f"{text}: {href}" for text, href in links.of_alert(transition))]
    )
    return {
        "message": clip(transition.summary, MESSAGE_MAX),
        "alias": transition.alert_id,
        "description": clip(description, DESCRIPTION_MAX),
        "priority": PRIORITY[transition.severity],
        "source": SOURCE,
        "entity": transition.advertiser_name or transition.advertiser_id,
        "tags": [transition.kind, f"bc:{transition.bc_id}"],
        "details": {
            **transition.values,
            "currency": transition.currency,
            "advertiser_id": transition.advertiser_id,
            "bc_id": transition.bc_id,
            "kind": transition.kind,
            "starts_at": transition.starts_at.isoformat(),
        },
    }


def close_request(transition: AlertTransition) -> dict[str, Any]:
    return {"source": SOURCE, "note": clip(transition.summary, DESCRIPTION_MAX)}


class OpsgenieReceiver(JsonApiReceiver[OpsgenieReceiverSettings]):
    kind = "opsgenie"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"GenieKey {self.settings.api_key.get_secret_value()}"}

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        return [self._request(t) for t in delivery.transitions]

    def _request(self, transition: AlertTransition) -> tuple[str, Mapping[str, Any]]:
        base = self.settings.url.rstrip("/") + "/v2/alerts"
        if transition.status == "resolved":
            alias = quote(transition.alert_id, safe="")
            return f"{base}/{alias}/close?identifierType=alias", close_request(transition)
        return base, create_request(transition, self.links)
