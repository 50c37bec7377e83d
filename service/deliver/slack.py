"""Slack: an incoming webhook with Block Kit, one bounded POST (``bounded_reply``) each.

A message may carry several transitions (a group): a header with the title, then one
attachment per alert, coloured by severity (green once resolved), with the advertiser, the
amounts and a link to the Ads Manager Promotions page. 429 is retried after ``Retry-After``;
other 4xx are final (a wrong URL or a refused payload does not get better by retrying).

Usage::

    receiver = SlackReceiver(settings, Renderer(settings, promotions_url=...), http)
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from config.notify import SlackReceiverSettings
from service.deliver.bounded_reply import post
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.digest import Digest
from service.deliver.http_status import outcome_of
from service.deliver.receivers import ConfiguredReceiver, Outcome
from service.deliver.templates import Renderer, alert_context

__all__ = ["SlackReceiver", "build_digest_message", "build_message"]

COLOURS = {"critical": "#d72638", "warning": "#f2a51a", "info": "#2d9cdb"}
RESOLVED_COLOUR = "#2eb67d"
# Slack shows at most 100 attachments; a longer group says how many it left out.
MAX_ALERTS = 20
_HEADER_MAX = 150
# Slack takes 50 blocks per message and 3,000 characters per section text.
_DIGEST_ACCOUNTS = 45
_SECTION_MAX = 3000


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


def build_digest_message(digest: Digest, renderer: Renderer) -> dict[str, Any]:
    """The digest as Block Kit: header, the totals per currency, then a section per account."""
    totals = "\n".join(
        f"*{t.currency}*: {t.accounts} accounts · {t.credit_left} credit left · "
        f"{t.burn_per_day}/day · {t.expiring} expiring in 7 days "
        f"({t.projected_forfeit} projected forfeit) · {t.firing} firing"
        for t in digest.totals
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": digest.title[:_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": totals or "No accounts seen yet."}},
        {"type": "divider"},
    ]
    for account in digest.accounts[:_DIGEST_ACCOUNTS]:
        text = renderer.render_digest("slack_account", digest, a=account)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_MAX]}})
    left_out = len(digest.accounts) - _DIGEST_ACCOUNTS
    if left_out > 0:
        more = f"and {left_out} more accounts not shown"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": digest.title, "blocks": blocks, "attachments": []}


@dataclass(eq=False, repr=False)
class SlackReceiver(ConfiguredReceiver[SlackReceiverSettings]):
    kind = "slack"

    renderer: Renderer
    http: httpx.AsyncClient
    clock: Clock = utc_now

    async def attempt(self, delivery: Delivery) -> Outcome:
        if delivery.digest is not None:
            message = build_digest_message(delivery.digest, self.renderer)
        else:
            message = build_message(delivery, self.renderer)
        # One POST, no retries in memory: the durable schedule retries.
        body = json.dumps(message)
        try:
            reply = await post(
                self.http,
                self.settings.url.get_secret_value(),
                content=body,
                headers={"content-type": "application/json; charset=utf-8"},
                timeout_s=self.settings.timeout_s,
            )
        except (TimeoutError, httpx.TimeoutException):
            return Outcome.retry(f"timeout after {self.settings.timeout_s:g} s")
        except httpx.TransportError as error:
            return Outcome.retry(f"transport error: {type(error).__name__}")
        retry_after = reply.headers.get("retry-after")
        outcome = outcome_of(reply.status_code, retry_after, self.clock(), client_errors_final=True)
        encoded = reply.headers.get("content-encoding", "identity") != "identity"
        if outcome.result != "delivered" and reply.body and not encoded:
            # Slack's answer is a word ("invalid_payload"): worth keeping, as printable text.
            text = reply.body[:200].decode("utf-8", "replace")
            said = "".join(c if c.isprintable() else "?" for c in text)
            return Outcome(
                outcome.result,
                f"{outcome.detail}: {said}",
                outcome.status_code,
                outcome.retry_after_s,
            )
        return outcome
