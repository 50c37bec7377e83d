"""The notification pipeline, assembled from settings: receivers, router, stores, loops.

The service role enters it: it gives the stream handler (``notifier.handle``) and runs three
loops until exit, the *flusher* (due groups -> deliveries), the *sender* (due deliveries
-> one attempt each) and the *digest scheduler* (due digests -> deliveries).
All state is in Redis, so stopping and starting loses nothing.

Usage::

    async with NotifyPipeline(settings, redis, http, announce=publish) as pipeline:
        consume(..., handle=pipeline.notifier.handle)
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any, TextIO

import httpx
import structlog
from redis.asyncio import Redis

from config.notify import (
    AnyReceiver,
    AppriseReceiverSettings,
    ConsoleReceiverSettings,
    DiscordReceiverSettings,
    EmailReceiverSettings,
    MuteTimeInterval,
    NotifySettings,
    OpsgenieReceiverSettings,
    PagerDutyReceiverSettings,
    SlackReceiverSettings,
    TeamsReceiverSettings,
    TelegramReceiverSettings,
    WebhookReceiverSettings,
)
from config.settings import Settings
from service.deadletter import DeadLetters
from service.deliver.alert_consumer import Notifier
from service.deliver.apprise import AppriseReceiver
from service.deliver.clock import Clock, utc_now
from service.deliver.console import ConsoleReceiver
from service.deliver.deliveries import DeliveryStore
from service.deliver.digests import Digests
from service.deliver.disabled import DisabledReceivers
from service.deliver.discord import DiscordReceiver
from service.deliver.groups import GroupStore
from service.deliver.inhibit import Inhibitor
from service.deliver.json_post import JsonApiReceiver
from service.deliver.links import AlertLinks
from service.deliver.opsgenie import OpsgenieReceiver
from service.deliver.pagerduty import PagerDutyReceiver
from service.deliver.receiver_limits import RateLimiter
from service.deliver.receivers import Receiver
from service.deliver.routing import Router
from service.deliver.sender import Announce, Sender, wait_for_event
from service.deliver.silences import Silences
from service.deliver.slack import SlackReceiver
from service.deliver.smtp import EmailReceiver
from service.deliver.subscriptions import SubscriptionKinds, Subscriptions
from service.deliver.teams import TeamsReceiver
from service.deliver.telegram import TelegramReceiver
from service.deliver.templates import Renderer
from service.deliver.webhook import WebhookReceiver
from workers.stopping import cancel_and_wait

__all__ = ["NotifyPipeline", "build_receiver", "build_receivers"]

log = structlog.get_logger(__name__)

# How often the digest scheduler looks for a due digest: digests are daily at the most.
DIGEST_EVERY_S = 30.0


def build_receiver(
    settings: AnyReceiver,
    notify: NotifySettings,
    http: httpx.AsyncClient,
    *,
    console: TextIO | None = None,
    clock: Clock = utc_now,
) -> Receiver:
    if isinstance(settings, ConsoleReceiverSettings):
        return ConsoleReceiver(settings, console)
    if isinstance(settings, WebhookReceiverSettings):
        return WebhookReceiver(settings, http, clock)
    if isinstance(settings, JsonApiSettings):
        return _json_api_receiver(settings, notify, http, clock)
    renderer = Renderer(settings, promotions_url=notify.promotions_url)
    if isinstance(settings, SlackReceiverSettings):
        return SlackReceiver(settings, renderer, http, clock)
    assert isinstance(settings, EmailReceiverSettings)
    return EmailReceiver(settings, renderer, clock)


JsonApiSettings = (
    PagerDutyReceiverSettings
    | OpsgenieReceiverSettings
    | TeamsReceiverSettings
    | DiscordReceiverSettings
    | TelegramReceiverSettings
    | AppriseReceiverSettings
)
_JSON_API_RECEIVERS: dict[type[JsonApiSettings], type[JsonApiReceiver[Any]]] = {
    PagerDutyReceiverSettings: PagerDutyReceiver,
    OpsgenieReceiverSettings: OpsgenieReceiver,
    TeamsReceiverSettings: TeamsReceiver,
    DiscordReceiverSettings: DiscordReceiver,
    TelegramReceiverSettings: TelegramReceiver,
    AppriseReceiverSettings: AppriseReceiver,
}


def _json_api_receiver(
    settings: JsonApiSettings, notify: NotifySettings, http: httpx.AsyncClient, clock: Clock
) -> Receiver:
    """The receivers that POST JSON through ``json_post``: incident tools and chats."""
    renderer = Renderer(settings, promotions_url=notify.promotions_url)
    receiver = _JSON_API_RECEIVERS[type(settings)]
    return receiver(settings, http, renderer, AlertLinks.of(notify), clock)


def build_receivers(
    notify: NotifySettings,
    http: httpx.AsyncClient,
    *,
    console: TextIO | None = None,
    clock: Clock = utc_now,
) -> dict[str, Receiver]:
    return {
        r.name: build_receiver(r, notify, http, console=console, clock=clock)
        for r in notify.all_receivers()
    }


class NotifyPipeline:
    """Everything between the alerts stream and the receivers."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        http: httpx.AsyncClient,
        *,
        announce: Announce,
        dead_letters: DeadLetters | None = None,
        console: TextIO | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        subscriber_http: httpx.AsyncClient | None = None,
    ) -> None:
        """``subscriber_http`` sends to API subscriptions: the service passes a
        ``url_guard.guarded_client``; None (tests) sends them through ``http`` too."""
        notify, streams = settings.notify, settings.streams
        to_subscribers = subscriber_http or http
        self.settings = notify
        self.clock = clock
        # The notifier wakes the flusher (or the sender, for what it sent at once), the flusher the
        # sender: no waiting for a poll tick.
        self.flush_wake = asyncio.Event()
        self.send_wake = asyncio.Event()
        self.receivers = build_receivers(notify, http, console=console, clock=clock)
        self.dead_letters = dead_letters or DeadLetters(redis, streams)
        self.deliveries = DeliveryStore(redis, streams, history=timedelta(days=notify.history_days))
        self.disabled = DisabledReceivers(redis, streams)
        self.silences = Silences(redis, streams)
        self.subscriptions = Subscriptions(redis, streams)
        router = Router(notify)
        self.inhibitor = Inhibitor(redis, streams, notify.all_inhibit_rules(), labels=router.labels)
        self.groups = GroupStore(
            redis,
            streams,
            self.deliveries,
            receiver_kinds=SubscriptionKinds({n: r.kind for n, r in self.receivers.items()}),
            mute_intervals=self._mute_interval,
            inhibitor=self.inhibitor,
        )
        self.sender = Sender(
            self.deliveries,
            self.receivers,
            limiter=RateLimiter(redis, streams),
            disabled=self.disabled,
            dead_letters=self.dead_letters,
            retry=notify.retry,
            announce=announce,
            lease=notify.delivery_lease,
            clock=clock,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
            resolve=lambda name: self.subscriptions.receiver(name, notify, to_subscribers, clock),
            fallbacks={r.name: r.fallback for r in notify.all_receivers() if r.fallback},
        )
        self.notifier = Notifier(
            router,
            self.groups,
            silences=self.silences,
            deliveries=self.deliveries,
            disabled=self.disabled,
            dead_letters=self.dead_letters,
            send_resolved={r.name: r.send_resolved for r in notify.all_receivers()},
            clock=clock,
            wake=self.flush_wake,
            wake_sender=self.send_wake,
            extra_targets=lambda: self.subscriptions.router(notify),
            inhibitor=self.inhibitor,
            sender=self.sender,
        )
        self.digests = Digests(redis, settings, self.deliveries, clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def _mute_interval(self, name: str) -> MuteTimeInterval | None:
        try:
            return self.settings.mute_interval(name)
        except KeyError:
            return None  # renamed since the group was made: it no longer mutes

    async def run_once(self) -> None:
        """One flush and one send round (what the loops do, for tests with a fake clock)."""
        await self.groups.flush_due(self.clock())
        await self.digests.queue_due()
        await self.sender.run_once()

    async def _flush_loop(self) -> None:
        every = self.settings.poll_interval_s
        while not self._stopping.is_set():
            self.flush_wake.clear()
            try:
                if await self.groups.flush_due(self.clock()):
                    self.send_wake.set()
            except Exception:
                log.exception("flusher.round_failed")
            await wait_for_event(self.flush_wake, every)

    async def _digest_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if await self.digests.queue_due():
                    self.send_wake.set()
            except Exception:
                log.exception("digests.round_failed")
            await wait_for_event(self._stopping, DIGEST_EVERY_S)

    async def _send_loop(self) -> None:
        await self.sender.run(self.send_wake, self.settings.poll_interval_s, self._stopping)

    async def __aenter__(self) -> NotifyPipeline:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="notify-flusher"),
            asyncio.create_task(self._send_loop(), name="notify-sender"),
            asyncio.create_task(self._digest_loop(), name="notify-digests"),
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # The flag as well as the cancel: a cancel can be lost (workers.stopping), and each
        # loop also ends at its next look at the flag.
        self._stopping.set()
        self.flush_wake.set()
        self.send_wake.set()
        await cancel_and_wait(self._tasks)
        self._tasks = []
