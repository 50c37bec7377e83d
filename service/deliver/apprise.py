"""A generic receiver for the long tail: an Apprise API server fans the message out.

An `Apprise API <https://github.com/caronc/apprise-api>`_ server keeps, under a key, the
Apprise URLs of any of its 100+ services (Lark/Feishu, DingTalk, WeCom, ntfy, Matrix, ...);
we POST ``{"title", "body", "type", "format"}`` (and ``tag`` if set) to its
``/notify/{key}``, so a new channel is configuration on that server, not code here. The body
is the plain-text template; ``type`` is ``failure`` (critical), ``warning``, ``info`` or
``success`` (resolved). Apprise answers 200 once every service took it; 424 means one of them
failed downstream and is retried; 204 means the key has no configuration (final: nothing was
sent); 400 a payload it refused (final).

Usage::

    receiver = AppriseReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.notify import AppriseReceiverSettings
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver, Reply
from service.deliver.receivers import Outcome
from service.deliver.templates import Renderer

__all__ = ["AppriseReceiver", "build_request"]

TYPES = {"critical": "failure", "warning": "warning", "info": "info"}
_ORDER = ["info", "warning", "critical"]


def build_request(delivery: Delivery, renderer: Renderer, tag: str | None) -> dict[str, Any]:
    transitions, repeat = delivery.transitions, delivery.repeat
    firing = [t.severity for t in transitions if t.status == "firing"]
    kind = TYPES[max(firing, key=_ORDER.index)] if firing else "success"
    request: dict[str, Any] = {
        "title": renderer.render("subject", transitions, repeat=repeat),
        "body": renderer.render("text", transitions, repeat=repeat),
        "type": kind,
        "format": "text",
    }
    if tag is not None:
        request["tag"] = tag
    return request


class AppriseReceiver(JsonApiReceiver[AppriseReceiverSettings]):
    kind = "apprise"

    def headers(self) -> dict[str, str]:
        return {"accept": "application/json"}

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        body = build_request(delivery, self.renderer, self.settings.tag)
        return [(self.settings.url.get_secret_value(), body)]

    def read(self, reply: Reply) -> Outcome:
        if reply.status == 204:
            return Outcome.failed(
                "HTTP 204: the Apprise server has no configuration for the key", 204
            )
        outcome = reply.outcome(self.clock())
        if reply.status == 424:
            return Outcome.retry(f"{outcome.detail} (a service behind Apprise failed)", 424)
        return outcome
