"""Discord: a channel webhook with one embed per alert, cut to Discord's limits.

The limits are those of https://discord.com/developers/docs/resources/message#embed-object-embed-limits:
at most 10 embeds per message; per embed a title of 256 characters, a description of 4,096,
25 fields of name 256 and value 1,024, a footer of 2,048; and 6,000 characters in all the
embeds' titles, descriptions, field names and values and footers together. A longer group
shows its first alerts and says in ``content`` (at most 2,000 characters) how many it left
out; each embed gets an equal share of the 6,000 and its description is cut to fit. Mentions
are switched off (``allowed_mentions``): an advertiser named "@everyone" pings nobody.
Discord answers 204; a 429 carries ``retry_after`` (seconds) in its JSON as well as the
``Retry-After`` header, and is retried after it.

Usage::

    receiver = DiscordReceiver(settings, http, renderer, AlertLinks.of(notify))
    outcome = await receiver.attempt(delivery)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.notify import DiscordReceiverSettings
from service.deliver.clip import clip
from service.deliver.deliveries import Delivery
from service.deliver.json_post import JsonApiReceiver, Reply, seconds
from service.deliver.links import AlertLinks
from service.deliver.receivers import Outcome
from service.deliver.templates import Renderer
from workers.contract.alerts import AlertTransition

__all__ = ["LIMITS", "DiscordReceiver", "build_message", "embed_characters"]

LIMITS = {
    "embeds": 10,
    "total": 6000,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "content": 2000,
}
COLOURS = {"critical": 0xD72638, "warning": 0xF2A51A, "info": 0x2D9CDB}
RESOLVED_COLOUR = 0x2EB67D


def embed_characters(embed: dict[str, Any]) -> int:
    """The characters of an embed that count towards the 6,000 of a message."""
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
        + len(embed.get("footer", {}).get("text", ""))
        + len(embed.get("author", {}).get("name", ""))
    )


def _embed(transition: AlertTransition, links: AlertLinks, budget: int) -> dict[str, Any]:
    title = clip(
        f"{transition.status.upper()} {transition.kind}: "
        f"{transition.advertiser_name or transition.advertiser_id}",
        LIMITS["title"],
    )
    fields = [
        {
            "name": clip(name, LIMITS["field_name"]),
            "value": clip(f"{value} {transition.currency}", LIMITS["field_value"]),
            "inline": True,
        }
        for name, value in list(transition.values.items())[: LIMITS["fields"]]
    ]
    footer = clip(
        f"advertiser {transition.advertiser_id} · business center {transition.bc_id}",
        LIMITS["footer"],
    )
    link_lines = "\n".join(f"[{text}]({href})" for text, href in links.of_alert(transition))
    embed: dict[str, Any] = {
        "title": title,
        "url": links.of_alert(transition)[0][1],
        "color": RESOLVED_COLOUR
        if transition.status == "resolved"
        else COLOURS[transition.severity],
        "fields": fields,
        "footer": {"text": footer},
        "timestamp": transition.observed_at.isoformat(),
    }
    # Whatever the title, fields and footer leave of this embed's share is the description's.
    while fields and embed_characters(embed) > budget - len(link_lines) - 2:
        fields.pop()
    room = min(LIMITS["description"], budget - embed_characters(embed))
    summary_room = room - len(link_lines) - 2
    if summary_room > 0:
        embed["description"] = f"{clip(transition.summary, summary_room)}\n\n{link_lines}"
    else:
        embed["description"] = clip(transition.summary, max(room, 0))
    return embed


def build_message(delivery: Delivery, renderer: Renderer, links: AlertLinks) -> dict[str, Any]:
    """The webhook body: ``content`` (the title), up to 10 embeds within 6,000 characters."""
    transitions = delivery.transitions
    shown = transitions[: LIMITS["embeds"]]
    budget = LIMITS["total"] // max(len(shown), 1)
    title = renderer.render("subject", transitions, repeat=delivery.repeat)
    left_out = len(transitions) - len(shown)
    if left_out:
        title += f" (and {left_out} more not shown)"
    return {
        "content": clip(title, LIMITS["content"]),
        "embeds": [_embed(t, links, budget) for t in shown],
        "allowed_mentions": {"parse": []},
    }


class DiscordReceiver(JsonApiReceiver[DiscordReceiverSettings]):
    kind = "discord"

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        message = build_message(delivery, self.renderer, self.links)
        return [(self.settings.url.get_secret_value(), message)]

    def read(self, reply: Reply) -> Outcome:
        answer = reply.json()
        wait = seconds(answer.get("retry_after")) if isinstance(answer, dict) else None
        return reply.outcome(self.clock(), retry_after_s=wait)
