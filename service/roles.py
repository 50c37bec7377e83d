"""The running roles: the poller role and the service role, each an async context manager.

``creditwatch poller`` and ``creditwatch service`` run one each; ``run`` and ``demo`` run both
in one process; the end-to-end tests enter them directly against a real Redis.

Usage::

    async with service_role(settings, redis_url), poller_role(settings, redis_url):
        await stop.wait()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TextIO

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings, StreamSettings
from service.collector import tune_collector
from service.connections import RedisTarget, connect
from service.deadletter import DeadLetters
from service.deliver.http_transport import receivers_client
from service.deliver.pipeline import NotifyPipeline
from service.deliver.url_guard import guarded_client
from service.detect.ledger_store import ConfigLedger, RedisLedger, index_saved_ledgers
from service.detect.list_row import RowWriter
from service.detect.risk import RiskForecasts
from service.detect.rule_failures import RuleHealth
from service.detect.snapshot_consumer import Detector
from service.detect.staleness import StalenessWatch
from service.detect.state import AccountState, CenterState, StateStore
from service.http.serve import api_context, serve_api
from service.slot_owner import close_owners
from service.streams import DETECTORS, NOTIFIERS, GroupKeeper, consume, ensure_group
from workers.api_budget import ApiBudget
from workers.business_centers import business_centers, center_zones, learn_zones
from workers.claims import TickClaims
from workers.contract.alerts import AlertTransition
from workers.http_server import listening
from workers.ops_http import ops_app
from workers.poll_marks import PollMarks
from workers.poll_recorder import PollRecorder
from workers.poll_sources import PollerParts, poll_intervals, poll_jobs
from workers.poller import (
    BalancePoller,
    SourcePoller,
    job_id,
    schedule,
    sync_polls,
    watch_business_centers,
)
from workers.publish import SnapshotPublisher
from workers.risk_marks import RiskMarks
from workers.risk_polls import RiskPolls, risk_polling
from workers.stopping import cancel_and_wait
from workers.suspension_marks import SuspensionMarks
from workers.tiktok import TikTokClient, TikTokError

__all__ = ["poller_role", "service_role"]

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
    ledger = RedisLedger(redis, streams, ConfigLedger(settings.credits, settings.ladder_programs))
    # Every account commit also writes the account's status-list row, in its transaction.
    rows = RowWriter(redis, streams, ledger, settings.detect)
    accounts = StateStore(redis, streams, AccountState, "state", on_commit=rows.stage)
    centers = StateStore(redis, streams, CenterState, "bcstate")
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
        rule_health=RuleHealth(redis, streams, dead_letters),
        risk=RiskForecasts(RiskMarks(redis, streams), settings.detect),
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
    """Detectors on the snapshot stream and notifiers on the alerts stream (or only one of
    them, ``streams.groups``), until exit; and the HTTP app (status page, API, metrics) when
    ``api.enabled``."""
    streams = settings.streams
    tune_collector()
    redis, broker = connect(redis_url)
    # The HTTP app's pool is its own: a flood of requests cannot starve the pipeline.
    api_redis = RedisTarget.parse(redis_url).client(
        max_connections=settings.api.max_concurrency, timeout_s=settings.api.redis_wait_s
    )
    http = receivers_client()
    # API subscriptions are anyone's URLs: each connection is checked (SSRF, rebinding).
    subscriber_http = guarded_client(allow_private=settings.notify.allow_private_urls)
    try:
        # One group per shard stream: detector (and notifier) replicas share the shards
        # through the groups, and each shard's entries keep their order.
        space = streams.keyspace
        groups = [(stream, DETECTORS) for stream in space.snapshot_streams()] + [
            (stream, NOTIFIERS) for stream in space.alert_streams()
        ]
        for stream, group in groups:
            await ensure_group(redis, stream, group)
        # Ledgers saved before the ledger index existed join it once, so the detectors can
        # read only the advertisers it names (see ``ledger_store``).
        await index_saved_ledgers(redis, streams)
        dead_letters = DeadLetters(redis, streams)
        detector, watch = _detection(settings, redis, dead_letters)
        pipeline = NotifyPipeline(
            settings,
            redis,
            http,
            announce=_announcer(broker, streams),
            dead_letters=dead_letters,
            console=console,
            subscriber_http=subscriber_http,
        )
        group_consumer = partial(
            consume,
            broker,
            consumer=streams.consumer,
            dead_letters=dead_letters,
            reclaim_idle_ms=streams.reclaim_idle_ms,
        )
        detects = streams.groups in ("all", DETECTORS)
        notifies = streams.groups in ("all", NOTIFIERS)
        subscribers = [
            subscriber
            for stream in (space.snapshot_streams() if detects else [])
            for subscriber in group_consumer(
                stream=stream,
                group=DETECTORS,
                handle=detector.handle,
                handle_batch=detector.handle_batch,
                read_count=streams.detect_batch,
            )
        ] + [
            subscriber
            for stream in (space.alert_streams() if notifies else [])
            for subscriber in group_consumer(
                stream=stream,
                group=NOTIFIERS,
                handle=pipeline.notifier.handle,
                handle_batch=pipeline.notifier.handle_batch,
                read_count=streams.notify_batch,
            )
        ]
        api = api_context(
            settings,
            api_redis,
            broker,
            subscribers,
            subscriber_http,
            polled_sources=poll_intervals(settings.poll),
        )
        keeper = GroupKeeper(redis, groups, subscribers)
        await broker.start()
        keeper.start()
        try:
            async with AsyncExitStack() as running:
                if detects:
                    await running.enter_async_context(watch)
                if notifies:
                    await running.enter_async_context(pipeline)
                await running.enter_async_context(serve_api(api, on_listening=on_listening))
                log.info("service.started", consumer=streams.consumer, groups=streams.groups)
                yield broker
        finally:
            await keeper.stop()
    finally:
        await broker.stop()
        await http.aclose()
        await subscriber_http.aclose()
        await api_redis.aclose()
        await redis.aclose()
        await close_owners(api_redis)
        await close_owners(redis)


def _bc_lister(
    api: TikTokClient, zones: MutableMapping[str, str]
) -> Callable[[], Awaitable[list[str]]]:
    """``bc_ids: discover``: the enabled Business Centers the connection's token reaches; the
    same listing puts their time zones in ``zones``, a BC discovered later included."""

    async def list_bc_ids() -> list[str]:
        centers = await business_centers(api)
        zones.update(center_zones(centers))
        return [center.bc_id for center in centers if center.enabled]

    return list_bc_ids


@asynccontextmanager
async def poller_role(
    settings: Settings,
    redis_url: str,
    *,
    serve_metrics: bool = False,
    on_listening: Callable[[str], None] | None = None,
    bc_zones: Mapping[str, str] | None = None,
) -> AsyncIterator[list[SourcePoller]]:
    """One scheduled poll per (connection, source, business center), publishing snapshots,
    until exit.

    Each connection (access token) has its own client; connections of one developer app
    (``app_id``) share one request budget (QPS, QPM, QPD), as TikTok counts per app. A
    ``discover`` connection polls what ``/bc/get/`` lists. With ``serve_metrics`` (a poller in
    a process of its own) ``/healthz`` and ``/metrics`` are served on ``api.host``:``api.port``.
    ``bc_zones`` (bc_id -> time zone) puts transaction filter times on each BC's clock; without
    it each connection learns its BCs' zones from ``/bc/get/`` in the background.
    """
    redis, broker = connect(redis_url)
    tiktok = settings.tiktok
    budgets: dict[str, ApiBudget] = {}
    # Suspended endpoints show in /readyz, from whichever process serves it.
    suspension_marks = SuspensionMarks(redis, settings.streams, owner=settings.streams.consumer)
    zones = _ZoneLookups(bc_zones)
    try:
        await broker.connect()
        async with AsyncExitStack() as clients:
            publisher = SnapshotPublisher(broker, redis, settings.streams)
            reject = DeadLetters(redis, settings.streams).put
            # Several poller replicas may run: each tick of each job is polled by one of them.
            claims = TickClaims(redis, settings.streams, owner=settings.streams.consumer)
            scheduler = schedule([], settings)
            pollers: list[SourcePoller] = []
            risks: list[RiskPolls] = []
            marks = RiskMarks(redis, settings.streams)
            for connection in tiktok.resolved_connections():
                api = await clients.enter_async_context(
                    TikTokClient(
                        tiktok.for_connection(connection),
                        budget=_app_budget(budgets, settings, connection.app_id, suspension_marks),
                    )
                )
                jobs = poll_jobs(
                    PollerParts(
                        api, publisher, reject, settings.poll, connection.name, bc_zones=zones.zones
                    )
                )
                pollers += [poller for poller, _ in jobs]
                risks += _risk_polls(settings, jobs, marks, scheduler, claims)
                if connection.discovers:
                    watch_business_centers(
                        scheduler,
                        jobs,
                        _bc_lister(api, zones.zones),
                        settings,
                        connection=connection.name,
                        claims=claims,
                    )
                else:
                    zones.learn(api, connection.name)
                    sync_polls(scheduler, jobs, connection.bc_ids, settings, claims=claims)
                log.info("poller.connection", connection=connection.name, bc_ids=connection.bc_ids)
            # Each successful poll leaves a mark: /readyz and the data-age metric read them.
            recorder = PollRecorder(PollMarks(redis, settings.streams))
            recorder.attach(scheduler)
            scheduler.start()
            log.info("poller.started", connections=len(tiktok.resolved_connections()))
            try:
                async with AsyncExitStack() as ops:
                    if serve_metrics and settings.api.enabled:
                        await ops.enter_async_context(_ops_http(settings, on_listening))
                    await ops.enter_async_context(risk_polling(risks))
                    yield pollers
            finally:
                await zones.stop()
                scheduler.pause()
                for poller in pollers:
                    await poller.drain(timeout_s=settings.tiktok.timeout_s)
                scheduler.shutdown(wait=False)
                await recorder.drain()
                await suspension_marks.drain()
    finally:
        await broker.stop()
        await redis.aclose()


def _risk_polls(
    settings: Settings,
    jobs: list[tuple[SourcePoller, float]],
    marks: RiskMarks,
    scheduler: AsyncIOScheduler,
    claims: TickClaims,
) -> list[RiskPolls]:
    """The risk polls of a connection's balance pollers (none with ``poll.risk_polls`` off)."""
    if not settings.poll.risk_polls:
        return []
    return [
        RiskPolls(
            poller,
            marks,
            repoll_s=settings.poll.risk_repoll_s,
            centers=_CentersOf(scheduler, poller),
            claims=claims,
        )
        for poller, _ in jobs
        if isinstance(poller, BalancePoller)
    ]


def _app_budget(
    budgets: dict[str, ApiBudget],
    settings: Settings,
    app_id: str,
    suspension_marks: SuspensionMarks,
) -> ApiBudget:
    """The request budget of developer app ``app_id``, one for all its connections (TikTok
    counts per app); its suspensions are marked for /readyz."""
    if app_id not in budgets:
        budget = ApiBudget.from_settings(settings.tiktok, app=app_id)
        suspension_marks.follow(budget.suspensions)
        budgets[app_id] = budget
    return budgets[app_id]


class _ZoneLookups:
    """The BCs' time zones for transaction filter times: ``given`` ones (the demo's scenario),
    else those of each connection with listed ``bc_ids`` learned from ``/bc/get/`` in the
    background (a ``discover`` connection's come with each of its listings, ``_bc_lister``).
    A failed lookup leaves UTC and the transaction window's extra day, as without it."""

    def __init__(self, given: Mapping[str, str] | None) -> None:
        self.zones: dict[str, str] = dict(given or {})
        self._learns = given is None
        self._lookups: list[asyncio.Task[None]] = []

    def learn(self, api: TikTokClient, connection: str) -> None:
        if self._learns:
            self._lookups.append(asyncio.create_task(self._lookup(api, connection)))

    async def stop(self) -> None:
        await cancel_and_wait(self._lookups)

    async def _lookup(self, api: TikTokClient, connection: str) -> None:
        try:
            learned = await learn_zones(api, self.zones)
        except TikTokError as error:
            log.warning(
                "poller.bc_zones_unavailable",
                connection=connection,
                code=error.code,
                error=str(error),
            )
            return
        log.info("poller.bc_zones", connection=connection, learned=learned)


class _CentersOf:
    """The business centers ``poller`` has a job for now (they change with discovery)."""

    def __init__(self, scheduler: AsyncIOScheduler, poller: SourcePoller) -> None:
        self._scheduler = scheduler
        self._poller = poller

    def __contains__(self, bc_id: object) -> bool:
        return (
            isinstance(bc_id, str)
            and self._scheduler.get_job(job_id(self._poller, bc_id)) is not None
        )


def _ops_http(
    settings: Settings, on_listening: Callable[[str], None] | None
) -> AbstractAsyncContextManager[str]:
    """A lone poller's ``/healthz`` and ``/metrics``, where the service would serve its app."""
    api = settings.api
    return listening(
        ops_app(),
        host=api.host,
        port=api.port,
        name="poller",
        on_listening=on_listening,
        header_timeout_s=api.header_timeout_s,
    )
