"""Telegram: a bot's ``sendMessage`` to one chat, as HTML, within Telegram's 4,096 characters.

The request follows https://core.telegram.org/bots/api#sendmessage: ``chat_id``, ``text``
(1 to 4,096 characters after entities are parsed), ``parse_mode: HTML``. Everything we put in
the text is escaped (``&``, ``<``, ``>``, and quotes inside a link), so an advertiser name
cannot break the markup. A message that would be longer keeps the alerts that fit and says
how many it left out; a single alert with a very long summary has its summary cut. The bot
token is in the URL (``/bot<token>/sendMessage``): it never appears in an outcome or a log.
A 429 carries ``parameters.retry_after`` and is retried after it; other 4xx (a wrong chat,
a blocked bot, a bad token) are final.

Usage::

    receiver = TelegramReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from config.notify import TelegramReceiverSettings
from service.deliver.clip import ELLIPSIS
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver, Reply, seconds
from service.deliver.links import AlertLinks
from service.deliver.receivers import Outcome
from service.deliver.templates import Renderer
from workers.contract.alerts import AlertTransition

__all__ = ["TEXT_MAX", "TelegramReceiver", "build_text"]

TEXT_MAX = 4096
_EMOJI = {"critical": "🚨", "warning": "⚠️", "info": "ℹ️"}  # noqa: RUF001 - emoji, meant


def _escaped_within(text: str, limit: int) -> str:
    """``text`` escaped for HTML, cut (with an ellipsis) so that the escaped form fits."""
    escaped = html.escape(text, quote=False)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = len(ELLIPSIS)
    for char in text:
        piece = html.escape(char, quote=False)
        if used + len(piece) > limit:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + ELLIPSIS


def _alert(transition: AlertTransition, links: AlertLinks, summary_limit: int) -> str:
    mark = "✅" if transition.status == "resolved" else _EMOJI[transition.severity]
    name = html.escape(transition.advertiser_name or transition.advertiser_id, quote=False)
    lines = [
        f"{mark} <b>{transition.status.upper()}</b> <code>{html.escape(transition.kind)}</code>"
        f" · <b>{name}</b> ({html.escape(transition.advertiser_id)})",
        _escaped_within(transition.summary, summary_limit),
        *(
            f"{html.escape(key)}: <b>{html.escape(value)} {transition.currency}</b>"
            for key, value in transition.values.items()
        ),
        " · ".join(
            f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'
            for text, href in links.of_alert(transition)
        ),
    ]
    return "\n".join(lines)


def build_text(delivery: Delivery, renderer: Renderer, links: AlertLinks) -> str:
    """The HTML text: a bold title, then one block per alert, at most ``TEXT_MAX`` long."""
    title = renderer.render("subject", delivery.transitions, repeat=delivery.repeat)
    head = f"<b>{_escaped_within(title, 512)}</b>"
    blocks: list[str] = []
    used = len(head)
    reserve = 40  # for "and N more not shown"
    for index, transition in enumerate(delivery.transitions):
        room = TEXT_MAX - used - 2 - (reserve if index < len(delivery.transitions) - 1 else 0)
        block = _alert(transition, links, summary_limit=TEXT_MAX)
        if len(block) > room:
            # Only the summary is cut: status, amounts and links matter more than its tail.
            overflow = len(block) - room
            summary = len(_escaped_within(transition.summary, TEXT_MAX))
            if blocks or summary - overflow < 40:
                break
            block = _alert(transition, links, summary_limit=summary - overflow)
        blocks.append(block)
        used += len(block) + 2
    text = "\n\n".join([head, *blocks])
    left_out = len(delivery.transitions) - len(blocks)
    if left_out:
        text += f"\n\nand {left_out} more not shown"
    return text


class TelegramReceiver(JsonApiReceiver[TelegramReceiverSettings]):
    kind = "telegram"

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        token = self.settings.bot_token.get_secret_value()
        url = f"{self.settings.api_url.rstrip('/')}/bot{token}/sendMessage"
        body = {
            "chat_id": self.settings.chat_id,
            "text": build_text(delivery, self.renderer, self.links),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        return [(url, body)]

    def read(self, reply: Reply) -> Outcome:
        answer = reply.json()
        parameters = answer.get("parameters") if isinstance(answer, dict) else None
        wait = seconds(parameters.get("retry_after")) if isinstance(parameters, dict) else None
        return reply.outcome(self.clock(), retry_after_s=wait)
