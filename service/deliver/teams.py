"""Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
received"), with an Adaptive Card 1.4.

The body is the message the Workflows template expects
(https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook):
``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard>}]}``. The card has the
title, then one container per alert (styled by severity, "good" once resolved) with its
summary, a fact set of the amounts and buttons to the status page and Promotions page. Teams
refuses messages over about 28 KB with 413: alerts are left out from the end (the card says
how many) until the message fits, and a 413 that still comes back is final and dead-lettered.

Usage::

    receiver = TeamsReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.notify import TeamsReceiverSettings
from service.deliver.clip import clip
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver
from service.deliver.links import AlertLinks
from service.deliver.templates import Renderer
from workers.contract import wire
from workers.contract.alerts import AlertTransition

__all__ = ["MAX_BYTES", "TeamsReceiver", "build_message"]

# Teams' limit is about 28 KB for the whole message; a margin for the envelope Workflows adds.
MAX_BYTES = 27_000
STYLE = {"critical": "attention", "warning": "warning", "info": "accent"}
_SUMMARY_MAX = 2000


def _alert(transition: AlertTransition, links: AlertLinks) -> dict[str, Any]:
    resolved = transition.status == "resolved"
    heading = (
        f"{transition.status.upper()} {transition.severity} {transition.kind}: "
        f"{transition.advertiser_name} ({transition.advertiser_id})"
    )
    facts = [
        {"title": name, "value": f"{value} {transition.currency}"}
        for name, value in transition.values.items()
    ]
    facts.append({"title": "business center", "value": transition.bc_id})
    facts.append({"title": "since", "value": transition.starts_at.isoformat(timespec="minutes")})
    return {
        "type": "Container",
        "style": "good" if resolved else STYLE[transition.severity],
        "bleed": True,
        "items": [
            {"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": clip(transition.summary, _SUMMARY_MAX), "wrap": True},
            {"type": "FactSet", "facts": facts},
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": text, "url": href}
                    for text, href in links.of_alert(transition)
                ],
            },
        ],
    }


def _message(title: str, containers: list[dict[str, Any]], left_out: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "size": "Large", "weight": "Bolder", "wrap": True},
        *containers,
    ]
    if left_out:
        body.append({"type": "TextBlock", "text": f"and {left_out} more not shown", "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def build_message(delivery: Delivery, renderer: Renderer, links: AlertLinks) -> dict[str, Any]:
    """The Workflows message, at most ``MAX_BYTES`` of JSON."""
    title = clip(renderer.render("subject", delivery.transitions, repeat=delivery.repeat), 500)
    containers = [_alert(t, links) for t in delivery.transitions]
    shown = len(containers)
    while True:
        message = _message(title, containers[:shown], len(containers) - shown)
        if shown == 0 or len(wire.dumps(message)) <= MAX_BYTES:
            return message
        shown -= 1


class TeamsReceiver(JsonApiReceiver[TeamsReceiverSettings]):
    kind = "teams"

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        message = build_message(delivery, self.renderer, self.links)
        return [(self.settings.url.get_secret_value(), message)]
