"""The running roles: the poller role and the service role, each an async context manager.

``creditwatch poller`` and ``creditwatch service`` run one each; ``run`` and ``demo`` run both
in one process; the end-to-end tests enter them directly against a real Redis.

Usage::

    async with service_role(settings, redis_url), poller_role(settings, redis_url):
        await stop.wait()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TextIO

import httpx
import structlog
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings, StreamSettings
from service.alerts import AlertTransition
from service.collector import tune_collector
from service.connections import connect
from service.deadletter import DeadLetters
from service.deliver.pipeline import NotifyPipeline, build_receivers
from service.detect.consumer import Detector
from service.detect.staleness import StalenessWatch
from service.detect.state import AccountState, CenterState, StateStore
from service.http.poll_recorder import PollRecorder
from service.http.serve import api_context, serve_api
from service.ledger_store import ConfigLedger, RedisLedger
from service.streams import DETECTORS, NOTIFIERS, GroupKeeper, consume, ensure_group
from workers.bc_balance_poller import BcBalancePoller
from workers.claims import TickClaims
from workers.http_server import listening
from workers.ops_http import ops_app
from workers.poll_marks import PollMarks
from workers.poller import BalancePoller, SourcePoller, schedule
from workers.publish import SnapshotPublisher
from workers.ratelimit import QpsBudget
from workers.spend_poller import CostPoller, ReportPoller
from workers.tiktok import TikTokClient
from workers.transaction_poller import TransactionPoller

__all__ = ["build_receivers", "poller_role", "service_role"]

log = structlog.get_logger(__name__)


def _announcer(
    broker: RedisBroker, streams: StreamSettings
) -> Callable[[AlertTransition], Awaitable[None]]:
    """Ops alerts (a receiver disabled) go on the alerts stream and are routed like any other."""

    async def announce(transition: AlertTransition) -> None:
        await broker.publish(transition.to_json(), stream=streams.alerts, maxlen=streams.maxlen)

    return announce


def _detection(
    settings: Settings, redis: Redis, dead_letters: DeadLetters
) -> tuple[Detector, StalenessWatch]:
    """The detectors: account and business-center state, the ledger, the staleness watch."""
    streams = settings.streams
    accounts = StateStore(redis, streams, AccountState, "state")
    centers = StateStore(redis, streams, CenterState, "bcstate")
    ledger = RedisLedger(redis, streams, ConfigLedger(settings.credits, settings.ladder_programs))
    interval = settings.poll.balance_interval_s
    watch = StalenessWatch(
        redis,
        accounts,
        streams,
        interval_s=interval,
        stale_after_s=settings.detect.stale_intervals * interval,
    )
    detector = Detector(
        accounts=accounts,
        centers=centers,
        ledger=ledger,
        dead_letters=dead_letters,
        settings=settings.detect,
        watch=watch,
    )
    return detector, watch


@asynccontextmanager
async def service_role(
    settings: Settings,
    redis_url: str,
    *,
    console: TextIO | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> AsyncIterator[RedisBroker]:
    """Detectors on the snapshot stream and notifiers on the alerts stream, until exit;
    and the HTTP app (status page, API, metrics) when ``api.enabled``."""
    streams = settings.streams
    tune_collector()
    redis, broker = connect(redis_url)
    http = httpx.AsyncClient()
    try:
        await ensure_group(redis, streams.snapshots, DETECTORS)
        await ensure_group(redis, streams.alerts, NOTIFIERS)
        dead_letters = DeadLetters(redis, streams)
        detector, watch = _detection(settings, redis, dead_letters)
        pipeline = NotifyPipeline(
            settings,
            redis,
            http,
            announce=_announcer(broker, streams),
            dead_letters=dead_letters,
            console=console,
        )
        group_consumer = partial(
            consume,
            broker,
            consumer=streams.consumer,
            dead_letters=dead_letters,
            reclaim_idle_ms=streams.reclaim_idle_ms,
        )
        subscribers = group_consumer(
            stream=streams.snapshots,
            group=DETECTORS,
            handle=detector.handle,
            handle_batch=detector.handle_batch,
            read_count=streams.detect_batch,
        ) + group_consumer(stream=streams.alerts, group=NOTIFIERS, handle=pipeline.notifier.handle)
        api = api_context(settings, redis, broker, subscribers, http)
        keeper = GroupKeeper(
            redis, [(streams.snapshots, DETECTORS), (streams.alerts, NOTIFIERS)], subscribers
        )
        await broker.start()
        keeper.start()
        try:
            async with watch, pipeline, serve_api(api, on_listening=on_listening):
                log.info("service.started", consumer=streams.consumer)
                yield broker
        finally:
            await keeper.stop()
    finally:
        await broker.stop()
        await http.aclose()
        await redis.aclose()


@asynccontextmanager
async def poller_role(
    settings: Settings,
    redis_url: str,
    *,
    serve_metrics: bool = False,
    on_listening: Callable[[str], None] | None = None,
) -> AsyncIterator[list[SourcePoller]]:
    """One scheduled poll per (source, business center), publishing snapshots, until exit.

    Sources: balances, daily spend (cost and report), credit transactions, the BC balance;
    all share one client, so one QPS budget. With ``serve_metrics`` (a poller in a process
    of its own) ``/healthz`` and ``/metrics`` are served on ``api.host``:``api.port``.
    """
    redis, broker = connect(redis_url)
    poll = settings.poll
    tiktok = settings.tiktok
    budget = QpsBudget(tiktok.qps, margin_s=tiktok.qps_margin_s)
    try:
        await broker.connect()
        async with TikTokClient(tiktok, budget=budget) as api:
            publisher = SnapshotPublisher(broker, redis, settings.streams)
            reject = DeadLetters(redis, settings.streams).put
            days = poll.spend_lookback_days
            jobs: list[tuple[SourcePoller, float]] = [
                (BalancePoller(api, publisher, reject=reject), poll.balance_interval_s),
                (
                    CostPoller(api, publisher, reject=reject, lookback_days=days),
                    poll.spend_interval_s,
                ),
                (
                    TransactionPoller(
                        api, publisher, reject=reject, lookback_days=poll.transaction_lookback_days
                    ),
                    poll.transaction_interval_s,
                ),
                (
                    ReportPoller(api, publisher, reject=reject, lookback_days=days),
                    poll.report_interval_s,
                ),
                (BcBalancePoller(api, publisher, reject=reject), poll.bc_balance_interval_s),
            ]
            # Several poller replicas may run: each tick of each job is polled by one of them.
            claims = TickClaims(redis, settings.streams, owner=settings.streams.consumer)
            scheduler = schedule(jobs, settings, claims=claims)
            # Each successful poll leaves a mark: /readyz and the data-age metric read them.
            recorder = PollRecorder(PollMarks(redis, settings.streams))
            recorder.attach(scheduler)
            scheduler.start()
            log.info("poller.started", bc_ids=settings.tiktok.bc_ids)
            pollers = [poller for poller, _ in jobs]
            try:
                async with AsyncExitStack() as ops:
                    if serve_metrics and settings.api.enabled:
                        await ops.enter_async_context(_ops_http(settings, on_listening))
                    yield pollers
            finally:
                scheduler.pause()
                for poller in pollers:
                    await poller.drain(timeout_s=settings.tiktok.timeout_s)
                scheduler.shutdown(wait=False)
                await recorder.drain()
    finally:
        await broker.stop()
        await redis.aclose()


def _ops_http(
    settings: Settings, on_listening: Callable[[str], None] | None
) -> AbstractAsyncContextManager[str]:
    """A lone poller's ``/healthz`` and ``/metrics``, where the service would serve its app."""
    api = settings.api
    return listening(
        ops_app(), host=api.host, port=api.port, name="poller", on_listening=on_listening
    )
