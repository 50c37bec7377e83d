"""Slack: an incoming webhook with Block Kit, through ``slack_sdk``'s async webhook client.

A message may carry several transitions (a group): a header with the title, then one
attachment per alert, coloured by severity (green once resolved), with the advertiser, the
amounts and a link to the Ads Manager Promotions page. 429 is retried after ``Retry-After``;
other 4xx are final (a wrong URL or a refused payload does not get better by retrying).

Usage::

    receiver = SlackReceiver(settings, Renderer(settings, promotions_url=...))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from config.notify import SlackReceiverSettings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.http_status import outcome_of
from service.deliver.receivers import ConfiguredReceiver, Outcome
from service.deliver.templates import Renderer, alert_context

__all__ = ["SlackReceiver", "build_message"]

COLOURS = {"critical": "#d72638", "warning": "#f2a51a", "info": "#2d9cdb"}
RESOLVED_COLOUR = "#2eb67d"
# Slack shows at most 100 attachments; a longer group says how many it left out.
MAX_ALERTS = 20
_HEADER_MAX = 150


def build_message(delivery: Delivery, renderer: Renderer) -> dict[str, Any]:
    """The JSON body: ``text`` (the notification fallback), header block, attachments."""
    title = renderer.render("slack_title", delivery.transitions, repeat=delivery.repeat)
    attachments: list[dict[str, Any]] = []
    for transition in delivery.transitions[:MAX_ALERTS]:
        alert = alert_context(transition, renderer.promotions_url)
        text = renderer.render("slack_alert", [transition], repeat=delivery.repeat, alert=alert)
        fields = [
            {"type": "mrkdwn", "text": f"*{name}*\n{value} {transition.currency}"}
            for name, value in list(transition.values.items())[:10]
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{alert['link']}|Promotions page> · business center "
                        f"{transition.bc_id} · since {transition.starts_at:%Y-%m-%d %H:%M %Z}",
                    }
                ],
            }
        )
        colour = (
            RESOLVED_COLOUR if transition.status == "resolved" else COLOURS[transition.severity]
        )
        attachments.append({"color": colour, "blocks": blocks, "fallback": transition.summary})
    left_out = len(delivery.transitions) - MAX_ALERTS
    header: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:_HEADER_MAX]}}
    ]
    if left_out > 0:
        header.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"and {left_out} more not shown"}],
            }
        )
    return {"text": title, "blocks": header, "attachments": attachments}


class SlackReceiver(ConfiguredReceiver[SlackReceiverSettings]):
    kind = "slack"

    def __init__(
        self, settings: SlackReceiverSettings, renderer: Renderer, clock: Clock = utc_now
    ) -> None:
        super().__init__(settings)
        self._renderer = renderer
        self._clock = clock
        # No retry handlers: the durable schedule retries, not the client in memory.
        self._client = AsyncWebhookClient(
            settings.url.get_secret_value(),
            timeout=int(settings.timeout_s),
            retry_handlers=[],
        )

    async def attempt(self, delivery: Delivery) -> Outcome:
        message = build_message(delivery, self._renderer)
        try:
            response = await self._client.send(
                text=message["text"], blocks=message["blocks"], attachments=message["attachments"]
            )
        except TimeoutError:
            return Outcome.retry(f"timeout after {self._settings.timeout_s:g} s")
        except aiohttp.ClientError as error:
            return Outcome.retry(f"transport error: {type(error).__name__}")
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        retry_after = headers.get("retry-after")
        if isinstance(retry_after, list):
            retry_after = retry_after[0] if retry_after else None
        outcome = outcome_of(
            response.status_code, retry_after, self._clock(), client_errors_final=True
        )
        if outcome.result != "delivered" and response.body:
            return Outcome(
                outcome.result,
                f"{outcome.detail}: {response.body[:200]}",
                outcome.status_code,
                outcome.retry_after_s,
            )
        return outcome
