"""The notification pipeline, assembled from settings: receivers, router, stores, loops.

The service role enters it: it gives the stream handler (``notifier.handle``) and runs two
loops until exit, the *flusher* (due groups -> deliveries) and the *sender* (due deliveries
-> one attempt each). All state is in Redis, so stopping and starting loses nothing.

Usage::

    async with NotifyPipeline(settings, redis, http, announce=publish) as pipeline:
        consume(..., handle=pipeline.notifier.handle)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta
from types import TracebackType
from typing import TextIO

import httpx
import structlog
from redis.asyncio import Redis

from config.notify import (
    AnyReceiver,
    ConsoleReceiverSettings,
    EmailReceiverSettings,
    MuteTimeInterval,
    NotifySettings,
    SlackReceiverSettings,
    WebhookReceiverSettings,
)
from config.settings import Settings
from service.deadletter import DeadLetters
from service.deliver.clock import Clock, utc_now
from service.deliver.console import ConsoleReceiver
from service.deliver.consumer import Notifier
from service.deliver.deliveries import DeliveryStore
from service.deliver.disabled import DisabledReceivers
from service.deliver.groups import GroupStore
from service.deliver.ratelimit import RateLimiter
from service.deliver.receivers import Receiver
from service.deliver.routing import Router
from service.deliver.sender import Announce, Sender, wait_for_event
from service.deliver.silences import Silences
from service.deliver.slack import SlackReceiver
from service.deliver.smtp import EmailReceiver
from service.deliver.subscriptions import SubscriptionKinds, Subscriptions
from service.deliver.templates import Renderer
from service.deliver.webhook import WebhookReceiver

__all__ = ["NotifyPipeline", "build_receiver", "build_receivers"]

log = structlog.get_logger(__name__)


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
    renderer = Renderer(settings, promotions_url=notify.promotions_url)
    if isinstance(settings, SlackReceiverSettings):
        return SlackReceiver(settings, renderer, clock)
    assert isinstance(settings, EmailReceiverSettings)
    return EmailReceiver(settings, renderer, clock)


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
    ) -> None:
        notify, streams = settings.notify, settings.streams
        self.settings = notify
        self.clock = clock
        # The notifier wakes the flusher, the flusher the sender: no waiting for a poll tick.
        self.flush_wake = asyncio.Event()
        self.send_wake = asyncio.Event()
        self.receivers = build_receivers(notify, http, console=console, clock=clock)
        self.dead_letters = dead_letters or DeadLetters(redis, streams)
        self.deliveries = DeliveryStore(redis, streams, history=timedelta(days=notify.history_days))
        self.disabled = DisabledReceivers(redis, streams)
        self.silences = Silences(redis, streams)
        self.subscriptions = Subscriptions(redis, streams)
        self.groups = GroupStore(
            redis,
            streams,
            self.deliveries,
            receiver_kinds=SubscriptionKinds({n: r.kind for n, r in self.receivers.items()}),
            mute_intervals=self._mute_interval,
        )
        self.notifier = Notifier(
            Router(notify),
            self.groups,
            silences=self.silences,
            deliveries=self.deliveries,
            disabled=self.disabled,
            dead_letters=self.dead_letters,
            send_resolved={r.name: r.send_resolved for r in notify.all_receivers()},
            clock=clock,
            wake=self.flush_wake,
            extra_targets=lambda labels: self.subscriptions.targets(labels, notify),
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
            rng=rng,
            resolve=lambda name: self.subscriptions.receiver(name, notify, http, clock),
        )
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

    async def _send_loop(self) -> None:
        await self.sender.run(self.send_wake, self.settings.poll_interval_s, self._stopping)

    async def __aenter__(self) -> NotifyPipeline:
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="notify-flusher"),
            asyncio.create_task(self._send_loop(), name="notify-sender"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The flag as well as the cancel: on 3.11 a cancel that races a finishing wait can be
        # swallowed, and the loop must still end.
        self._stopping.set()
        self.flush_wake.set()
        self.send_wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
