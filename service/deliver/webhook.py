"""Signed webhooks per Standard Webhooks (``webhook-id``, ``-timestamp``, ``-signature``).

One POST per transition, with the public body of ``AlertTransition.webhook_body``. The
``webhook-id`` is derived from the delivery id, so it is the same on every retry of one
delivery and a subscriber can drop duplicates by it. Only a 2xx answer is success; 410 means
the endpoint is gone (the receiver is disabled); everything else, timeouts included, is
retried on the schedule, honouring ``Retry-After``. The reply is read within bounds
(``bounded_reply``): 64 KiB kept, one deadline for the whole attempt. With several secrets (a
rotation), the ``webhook-signature`` header carries one signature per secret, space-separated,
as Standard Webhooks specifies: a verifier holding any one of them accepts the message.

Usage::

    receiver = WebhookReceiver(settings, http)
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from standardwebhooks import Webhook

from config.notify import WebhookReceiverSettings
from service.deliver.bounded_reply import post
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.http_status import outcome_of
from service.deliver.receivers import ConfiguredReceiver, Outcome
from workers.contract import wire

__all__ = ["WebhookReceiver"]


@dataclass(eq=False, repr=False)
class WebhookReceiver(ConfiguredReceiver[WebhookReceiverSettings]):
    """One subscriber endpoint with its secret."""

    kind = "webhook"

    http: httpx.AsyncClient
    clock: Clock = utc_now
    _signers: list[Webhook] = field(init=False, repr=False)
    _url: httpx.URL = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._signers = [Webhook(s.get_secret_value()) for s in self.settings.signing_secrets]
        # Parsed once: httpx would parse the string again for every delivery.
        self._url = httpx.URL(self.settings.url)

    async def attempt(self, delivery: Delivery) -> Outcome:
        if len(delivery.transitions) != 1:
            return Outcome.failed("a webhook delivery carries exactly one transition")
        body = wire.dumps(delivery.transitions[0].webhook_body()).decode()
        msg_id = delivery.message_id
        # The signature's timestamp is real time: receivers reject stale ones.
        now = utc_now()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(s.sign(msg_id, now, body) for s in self._signers),
        }
        try:
            response = await post(
                self.http,
                self._url,
                content=body,
                headers=headers,
                timeout_s=self.settings.timeout_s,
            )
        except (TimeoutError, httpx.TimeoutException):
            return Outcome.retry(f"timeout after {self.settings.timeout_s:g} s")
        except httpx.TransportError as error:
            return Outcome.retry(f"transport error: {type(error).__name__}")
        return outcome_of(
            response.status_code,
            response.headers.get("retry-after"),
            self.clock(),
            client_errors_final=False,
        )
