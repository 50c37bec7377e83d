"""The ``digest`` command: preview a digest, or send one now through the normal delivery.

Usage::

    creditwatch digest preview                          # plain text, the default schedule
    creditwatch digest preview --receiver finance-mail --format html
    creditwatch digest send --receiver finance-slack    # queued; the running service sends it
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import TextIO

from redis.asyncio import Redis

from config.notify import ConsoleReceiverSettings
from config.settings import Settings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import DeliveryStore
from service.deliver.digests import Digests
from service.deliver.slack import build_digest_message
from service.deliver.templates import Renderer

__all__ = ["DigestCommandError", "add_digest_parser", "run_digest"]


class DigestCommandError(Exception):
    """An unknown receiver or one that takes no digest."""


def add_digest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    digest = commands.add_parser("digest", help="the account digest: preview or send now")
    what = digest.add_subparsers(dest="action", required=True)
    preview = what.add_parser("preview", help="print the digest as of now")
    preview.add_argument("--receiver", help="an email or slack receiver (its templates)")
    preview.add_argument("--format", choices=("text", "html", "slack"), default="text")
    send = what.add_parser("send", help="queue the digest for a receiver now")
    send.add_argument("--receiver", required=True)


async def run_digest(
    args: argparse.Namespace,
    settings: Settings,
    redis: Redis,
    *,
    out: TextIO,
    clock: Clock = utc_now,
) -> int:
    """Raises DigestCommandError for a receiver that is unknown or takes no digest."""
    store = DeliveryStore(
        redis, settings.streams, history=timedelta(days=settings.notify.history_days)
    )
    digests = Digests(redis, settings, store, clock)
    if args.receiver is not None:
        try:
            digests.digest_receiver(args.receiver)
        except KeyError:
            known = ", ".join(r.name for r in settings.notify.all_receivers()) or "none"
            raise DigestCommandError(
                f"no such receiver: {args.receiver} (known: {known})"
            ) from None
        except TypeError as error:
            raise DigestCommandError(str(error)) from None
    if args.action == "send":
        delivery_id = await digests.queue_now(args.receiver)
        print(f"queued: {delivery_id} (the running service sends it)", file=out)
        return 0
    digest = await digests.compose(args.receiver)
    receiver = (
        settings.notify.receiver(args.receiver)
        if args.receiver
        else ConsoleReceiverSettings(name="preview")
    )
    renderer = Renderer(receiver, promotions_url=settings.notify.promotions_url)
    if args.format == "slack":
        print(json.dumps(build_digest_message(digest, renderer), indent=2), file=out)
    else:
        print(renderer.render_digest(args.format, digest), file=out)
    return 0
