"""The running roles: the poller role and the service role, each an async context manager.

``creditwatch poller`` and ``creditwatch service`` run one each; ``run`` and ``demo`` run both
in one process; the end-to-end tests enter them directly against a real Redis.

Usage::

    async with service_role(settings, redis_url), poller_role(settings, redis_url):
        await stop.wait()
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

import httpx
import structlog
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import NotifySettings, Settings
from service.deadletter import DeadLetters
from service.deliver.console import ConsoleReceiver
from service.deliver.consumer import Notifier
from service.deliver.receivers import Receiver
from service.deliver.webhook import WebhookReceiver
from service.detect.consumer import Detector
from service.detect.state import StateStore
from service.streams import DETECTORS, NOTIFIERS, consume, ensure_group
from workers.poller import BalancePoller, schedule
from workers.publish import SnapshotPublisher
from workers.ratelimit import QpsBudget
from workers.tiktok import TikTokClient

__all__ = ["build_receivers", "poller_role", "service_role"]

log = structlog.get_logger(__name__)


def _broker(redis_url: str) -> RedisBroker:
    # FastStream logs every message at INFO, and its own handler bypasses ours: route it
    # through a standard logger (warnings and up reach stderr) and demote message logs.
    return RedisBroker(
        redis_url, logger=logging.getLogger("creditwatch.faststream"), log_level=logging.DEBUG
    )


def build_receivers(
    notify: NotifySettings, http: httpx.AsyncClient, console: TextIO | None = None
) -> list[Receiver]:
    receivers: list[Receiver] = []
    if notify.console:
        receivers.append(ConsoleReceiver(console))
    receivers.extend(
        WebhookReceiver(
            subscriber,
            http,
            max_attempts=notify.max_attempts,
            retry_base_s=notify.retry_base_s,
            timeout_s=notify.timeout_s,
        )
        for subscriber in notify.webhooks
    )
    return receivers


@asynccontextmanager
async def service_role(
    settings: Settings, redis_url: str, *, console: TextIO | None = None
) -> AsyncIterator[RedisBroker]:
    """Detectors on the snapshot stream and notifiers on the alerts stream, until exit."""
    streams = settings.streams
    redis = Redis.from_url(redis_url)
    broker = _broker(redis_url)
    http = httpx.AsyncClient()
    try:
        await ensure_group(redis, streams.snapshots, DETECTORS)
        await ensure_group(redis, streams.alerts, NOTIFIERS)
        dead_letters = DeadLetters(redis, streams)
        detector = Detector(StateStore(redis, broker, streams), dead_letters, settings.detect)
        notifier = Notifier(
            redis, build_receivers(settings.notify, http, console), dead_letters, streams
        )
        for stream, group, handle in (
            (streams.snapshots, DETECTORS, detector.handle),
            (streams.alerts, NOTIFIERS, notifier.handle),
        ):
            consume(
                broker,
                stream=stream,
                group=group,
                consumer=streams.consumer,
                handle=handle,
                dead_letters=dead_letters,
                reclaim_idle_ms=streams.reclaim_idle_ms,
            )
        await broker.start()
        log.info("service.started", consumer=streams.consumer)
        yield broker
    finally:
        await broker.stop()
        await http.aclose()
        await redis.aclose()


@asynccontextmanager
async def poller_role(settings: Settings, redis_url: str) -> AsyncIterator[BalancePoller]:
    """One scheduled balance poll per business center, publishing snapshots, until exit."""
    redis = Redis.from_url(redis_url)
    broker = _broker(redis_url)
    try:
        await broker.connect()
        async with TikTokClient(settings.tiktok, budget=QpsBudget(settings.tiktok.qps)) as api:
            poller = BalancePoller(
                api,
                SnapshotPublisher(broker, redis, settings.streams),
                reject=DeadLetters(redis, settings.streams).put,
            )
            scheduler = schedule(poller, settings)
            scheduler.start()
            log.info("poller.started", bc_ids=settings.tiktok.bc_ids)
            try:
                yield poller
            finally:
                scheduler.pause()
                await poller.drain(timeout_s=settings.tiktok.timeout_s)
                scheduler.shutdown(wait=False)
    finally:
        await broker.stop()
        await redis.aclose()
