"""Poll: APScheduler jobs, one per (connection, source, business center), turn API replies
into snapshots.

``SourcePoller`` is the plumbing every source shares: one poll fetches and validates rows,
publishes the valid ones in one round trip, and sets invalid rows aside (logged with their id,
counted, dead-lettered) so the others still publish. An API error fails that poll only: the
next interval tries again. A refused token (40105/40104/...) publishes a ``source_status``
snapshot (``auth_failed``); a poll that waits on a suspended endpoint publishes one
(``rate_limited``) and carries on when the pause ends; the next poll that gets through
publishes ``ok``, so the detectors can raise and resolve ``source.auth_failed`` and
``source.rate_limited``. Snapshots are stamped with the API's own time (the
reply's ``Date`` header, see ``workers.tiktok.reply_time``).

Sources: ``BalancePoller`` here (``/advertiser/balance/get/``); ``spend_poller``,
``transaction_poller`` and ``bc_balance_poller`` for the others.

Each poller belongs to one connection (one access token, ``tiktok.connections``): its job ids
and tick claims carry the connection, and so do its ``source_status`` snapshots, so that one
revoked token among several is told apart.

Scheduling: every request of a poll waits for its app's budget at the poll's rank
(``workers.priorities``): balances first, then transactions, the BC balance, cost, reports.
Balance sweeps run continuously (``poll.balance_sweeps``): the next starts
``poll.balance_min_gap_s`` after one ends, at spare rank, and turns urgent once it must start
to end within ``PACE`` (80 %) of the interval, so ``balance_interval_s`` is "at least this
often". The other sources run every interval, paced to finish within it (ahead of their
pace they yield even to spare balance sweeps). With replicas, a continuous sweep is claimed
as a whole (a lease), the others per tick, so no business center is polled twice.

Usage::

    poller = BalancePoller(client, publisher, reject=dead_letters_put, connection="agency-a")
    scheduler = schedule([(poller, 300.0)], settings)   # AsyncIOScheduler, one job per bc_id
    sync_polls(scheduler, [(poller, 300.0)], ["7001", "7002"], settings)   # add/remove BCs
    watch_business_centers(scheduler, jobs, list_bc_ids, settings)  # ``bc_ids: discover``
    scheduler.start()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Generic, Protocol, Required, TypedDict, TypeVar, Unpack

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError
from redis.exceptions import RedisError

from config.connections import DEFAULT_CONNECTION
from config.settings import Settings
from workers import metrics
from workers.claims import SweepLease, TickClaims
from workers.contract import wire
from workers.contract.snapshots import AccountBalanceSnapshot, Snapshot, SourceStatusSnapshot
from workers.priorities import BalanceSweep, Fixed, PacedSweep, Priority, claiming
from workers.suspensions import Pause
from workers.tiktok import AuthError, TikTokError, pause_listener, reply_time

__all__ = [
    "ApiPoller",
    "BalancePoller",
    "Clock",
    "PollResult",
    "PollerOptions",
    "Publisher",
    "Reject",
    "SourcePoller",
    "WindowedOptions",
    "WindowedPoller",
    "job_id",
    "schedule",
    "sync_polls",
    "watch_business_centers",
]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class Reject(Protocol):
    """Where rows that fail validation are set aside (the dead-letter stream)."""

    def __call__(
        self, *, source: str, reason: str, payload: bytes, error: str, entry_id: str = ""
    ) -> Awaitable[None]: ...


class Publisher(Protocol):
    async def publish(self, snapshots: list[Snapshot]) -> int: ...


class PollerOptions(TypedDict, total=False):
    """What every poller takes besides its API and publisher (see ``SourcePoller``)."""

    reject: Required[Reject]
    clock: Clock
    connection: str


class WindowedOptions(PollerOptions, total=False):
    """A ``WindowedPoller``'s options: the days its window reaches back, besides the rest."""

    lookback_days: int


@dataclass(frozen=True)
class PollResult:
    bc_id: str
    published: int
    rejected: int


class SourcePoller:
    """One source's polls: subclasses say how to ``collect`` snapshots for a business center.

    ``clock`` gives ``observed_at``; by default the API's time from the last reply.
    ``connection`` names the access token the poller's client uses.
    """

    source: ClassVar[str]
    # The rank of this source's requests in its app's budget (``workers.priorities``).
    priority: ClassVar[Priority] = Priority.REPORTS
    # Swept again as soon as budget is left over (balances), not only every interval.
    continuous: ClassVar[bool] = False

    def __init__(
        self,
        publisher: Publisher,
        *,
        reject: Reject,
        clock: Clock = reply_time,
        connection: str = DEFAULT_CONNECTION,
    ):
        self.connection = connection
        self._publisher = publisher
        self._reject = reject
        self._clock = clock
        self._in_flight: set[asyncio.Task[object]] = set()
        # Snapshots a running poll published before it ended (``publish_early``), per task.
        self._early: dict[int, int] = {}
        # A business center's first good poll in this process, and the first after a failed
        # one, publish an ``ok`` status: that resolves an auth alert, even across restarts.
        self._reported: set[str] = set()
        self._auth_failed: set[str] = set()
        self._rate_limited: set[str] = set()

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        """Fetch and validate; returns the valid snapshots and how many rows were rejected."""
        raise NotImplementedError

    async def publish_early(self, snapshots: list[Snapshot]) -> None:
        """Publish part of a poll's snapshots now (they count in its ``PollResult``)."""
        count = await self._publisher.publish(snapshots)
        key = id(asyncio.current_task())
        self._early[key] = self._early.get(key, 0) + count

    async def drain(self, timeout_s: float) -> None:
        """Let polls under way finish (up to ``timeout_s``), so a stop loses no fetched data."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)

    async def poll(
        self,
        bc_id: str,
        *,
        collect: Callable[[], Awaitable[tuple[list[Snapshot], int]]] | None = None,
    ) -> PollResult | None:
        """One poll of ``bc_id`` (``collect``: a narrower one than the whole business center);
        returns None if the API call failed (logged and counted)."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        try:
            with pause_listener(partial(self._paused, bc_id)):
                snapshots, rejected = await (collect() if collect else self.collect(bc_id))
        except AuthError as error:
            self._failed(task, bc_id, error, outcome="auth_failed", event="poll.auth_failed")
            self._auth_failed.add(bc_id)
            self._reported.add(bc_id)
            await self._publisher.publish([self._status(bc_id, "auth_failed", error.code)])
            return None
        except TikTokError as error:
            self._failed(task, bc_id, error, outcome="error", event="poll.failed")
            return None
        if bc_id in self._auth_failed or bc_id in self._rate_limited or bc_id not in self._reported:
            self._auth_failed.discard(bc_id)
            self._rate_limited.discard(bc_id)
            self._reported.add(bc_id)
            snapshots.append(self._status(bc_id, "ok", None))
        published = self._early.pop(id(task), 0) + await self._publisher.publish(snapshots)
        metrics.POLLS.labels(source=self.source, outcome="ok").inc()
        log.debug(
            "poll.done", source=self.source, bc_id=bc_id, published=published, rejected=rejected
        )
        return PollResult(bc_id=bc_id, published=published, rejected=rejected)

    def _failed(
        self,
        task: asyncio.Task[Any] | None,
        bc_id: str,
        error: TikTokError,
        *,
        outcome: str,
        event: str,
    ) -> None:
        """A poll the API refused: what it published early is not its count; count and log it
        (an auth failure as an error, since only a new token mends it)."""
        self._early.pop(id(task), None)
        metrics.POLLS.labels(source=self.source, outcome=outcome).inc()
        say = log.error if isinstance(error, AuthError) else log.warning
        say(
            event,
            source=self.source,
            connection=self.connection,
            bc_id=bc_id,
            code=error.code,
            error=str(error),
        )

    async def _paused(self, bc_id: str, pause: Pause) -> None:
        """This poll waits on a suspended endpoint: say so once, then let it wait."""
        if bc_id in self._rate_limited:
            return
        metrics.POLLS.labels(source=self.source, outcome="rate_limited").inc()
        log.warning(
            "poll.rate_limited",
            source=self.source,
            bc_id=bc_id,
            endpoint=pause.endpoint,
            until=pause.until,
        )
        self._rate_limited.add(bc_id)
        self._reported.add(bc_id)
        status = self._status(bc_id, "rate_limited", pause.code, pause=pause)
        try:
            await self._publisher.publish([status])
        except (RedisError, OSError) as error:
            # The poll itself goes on; the alert waits for the next pause or is never raised.
            log.warning("poll.status_failed", source=self.source, bc_id=bc_id, error=str(error))

    def _status(
        self, bc_id: str, status: str, code: int | None, *, pause: Pause | None = None
    ) -> SourceStatusSnapshot:
        return SourceStatusSnapshot.model_validate(
            {
                "bc_id": bc_id,
                "source": self.source,
                "connection": self.connection,
                "status": status,
                "code": code,
                "endpoint": pause.endpoint if pause is not None else None,
                "until": pause.until if pause is not None else None,
                "observed_at": self._clock(),
            }
        )

    async def validated(
        self,
        rows: Sequence[dict[str, Any]],
        build: Callable[[dict[str, Any]], Snapshot],
        row_id: Callable[[dict[str, Any]], Any],
        *,
        bc_id: str,
    ) -> tuple[list[Snapshot], int]:
        """``build`` each row; a row that fails validation is rejected, the rest are kept."""
        snapshots: list[Snapshot] = []
        rejected = 0
        for row in rows:
            try:
                snapshots.append(build(row))
            except ValidationError as error:
                rejected += 1
                await self._reject_row(bc_id, str(row_id(row))[:64], row, error)
        return snapshots, rejected

    async def _reject_row(
        self, bc_id: str, row_id: str, row: dict[str, Any], error: ValidationError
    ) -> None:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
        metrics.ACCOUNTS_REJECTED.labels(source=self.source).inc()
        log.warning(
            "poll.row_rejected",
            source=self.source,
            bc_id=bc_id,
            row_id=row_id,
            advertiser_id=row_id,
            error=problems,
        )
        try:
            payload = wire.dumps(row)
        except TypeError:
            payload = repr(row).encode()
        await self._reject(
            source=self.source,
            reason="invalid_row",
            payload=payload,
            error=problems,
            entry_id=f"{bc_id}:{row_id}",
        )


A = TypeVar("A")


class ApiPoller(SourcePoller, Generic[A]):
    """A poller that reads its source from ``api`` (a client, or a sandbox or fake of one)."""

    def __init__(
        self,
        api: A,
        publisher: Publisher,
        **options: Unpack[PollerOptions],
    ) -> None:
        super().__init__(publisher, **options)
        self._api = api


class BalanceSource(Protocol):
    def advertiser_balance_pages(self, bc_id: str) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def advertiser_balance(self, bc_id: str, advertiser_id: str) -> list[dict[str, Any]]: ...


class BalancePoller(ApiPoller[BalanceSource]):
    """Balances of every ad account of a business center: one snapshot per advertiser.

    ``poll_account`` polls one account on its own (an at-risk one, see ``workers.risk_polls``).
    """

    source = "advertiser_balance"
    priority = Priority.BALANCES
    continuous = True

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        rejected = 0
        # Page by page: each page's rows are stamped with that page's reply time and go on
        # the stream at once, so a sweep the scheduler stretches out does not hold its first
        # accounts back until its last page (nor make them look older to the detector).
        async for rows in self._api.advertiser_balance_pages(bc_id):
            valid, bad = await self._snapshots(bc_id, rows)
            await self.publish_early(valid)
            rejected += bad
        return [], rejected

    async def poll_account(self, bc_id: str, advertiser_id: str) -> PollResult | None:
        """One account's balance (``filtering.keyword`` = its id, one row)."""

        async def collect() -> tuple[list[Snapshot], int]:
            rows = await self._api.advertiser_balance(bc_id, advertiser_id)
            # A keyword matches names too: keep the account asked for only.
            mine = [row for row in rows if str(row.get("advertiser_id")) == advertiser_id]
            return await self._snapshots(bc_id, mine)

        return await self.poll(bc_id, collect=collect)

    async def _snapshots(
        self, bc_id: str, rows: list[dict[str, Any]]
    ) -> tuple[list[Snapshot], int]:
        observed_at = self._clock()
        return await self.validated(
            rows,
            lambda row: AccountBalanceSnapshot.from_api(row, bc_id=bc_id, observed_at=observed_at),
            lambda row: row.get("advertiser_id", "?"),
            bc_id=bc_id,
        )


class WindowedPoller(ApiPoller[A]):
    """A source re-read over a trailing window of days on every poll (spend, transactions).

    Figures lag and are revised, and windows overlap on purpose: the detectors replace or
    deduplicate, so re-reading costs requests, never correctness.
    """

    def __init__(
        self,
        api: A,
        publisher: Publisher,
        *,
        lookback_days: int = 7,
        **options: Unpack[PollerOptions],
    ) -> None:
        super().__init__(api, publisher, **options)
        self._lookback_days = lookback_days


def job_id(poller: SourcePoller, bc_id: str) -> str:
    """``<source>:<bc_id>@<connection>``: the job's id, and its tick-claim key for replicas
    (two connections polling one business center are two jobs)."""
    return f"{poller.source}:{bc_id}@{poller.connection}"


def _reschedule(scheduler: AsyncIOScheduler, job: str, after_s: float) -> None:
    """Run ``job`` again ``after_s`` from now (its interval stays the latest it runs)."""
    if scheduler.get_job(job) is not None:
        scheduler.modify_job(job, next_run_time=datetime.now(UTC) + timedelta(seconds=after_s))


def _continuous(
    scheduler: AsyncIOScheduler,
    poller: SourcePoller,
    interval_s: float,
    gap_s: float,
    claims: TickClaims | None,
) -> Callable[[str], Awaitable[PollResult | None]]:
    """Balance sweeps back to back: each one claimed as a whole (a lease, with replicas),
    urgent once it must start to end within ``PACE`` of the interval, the next ``gap_s`` after
    it ends. A failed sweep waits for the interval, as before, so an outage is not hammered."""
    finished: dict[str, float] = {}
    took: dict[str, float] = {}

    async def sweep(bc_id: str) -> PollResult | None:
        job = job_id(poller, bc_id)
        lease: SweepLease | None = None
        last = finished.get(bc_id)
        if claims is not None:
            lease = await claims.sweep(job, interval_s)
            if lease is None:  # another replica is sweeping it: look again after the gap
                _reschedule(scheduler, job, gap_s)
                return None
            last = await claims.last_done(job)
        result: PollResult | None = None
        started = time.time()
        try:
            rank = BalanceSweep(interval_s=interval_s, last_done=last, took_s=took.get(bc_id))
            with claiming(rank):
                result = await poller.poll(bc_id)
        finally:
            if lease is not None and claims is not None:
                try:
                    await claims.release(lease, done=result is not None)
                except (RedisError, OSError) as error:
                    # The lease expires by itself; the next sweep only waits for it.
                    log.warning("poll.release_failed", job=job, error=str(error))
        if result is not None:
            finished[bc_id] = time.time()
            took[bc_id] = finished[bc_id] - started
            _reschedule(scheduler, job, gap_s)
        return result

    return sweep


def _paced(
    poller: SourcePoller, interval_s: float, claims: TickClaims | None
) -> Callable[[str], Awaitable[PollResult | None]]:
    """A slower source's polls: one replica per tick (with claims), each sweep paced over
    its interval at the source's rank, expecting as many requests as its previous sweep."""
    needed: dict[str, int] = {}

    async def poll(bc_id: str) -> PollResult | None:
        if claims is not None and await claims.claim(job_id(poller, bc_id), interval_s) is None:
            return None  # another replica has this tick
        # Balances are never held back to a pace: they come first whenever they run.
        sweep: PacedSweep | Fixed = (
            Fixed(Priority.BALANCES)
            if poller.priority == Priority.BALANCES
            else PacedSweep(poller.priority, interval_s=interval_s, expected=needed.get(bc_id))
        )
        with claiming(sweep):
            result = await poller.poll(bc_id)
        if result is not None:
            needed[bc_id] = sweep.grants
        return result

    return poll


Jobs = Sequence[tuple[SourcePoller, float]]


def schedule(
    jobs: Jobs,
    settings: Settings,
    *,
    claims: TickClaims | None = None,
) -> AsyncIOScheduler:
    """An AsyncIOScheduler with one job per (poller, business center of ``tiktok.bc_ids``),
    first runs now; more are added with ``sync_polls`` and ``watch_business_centers``.

    ``jobs`` pairs each poller with its interval in seconds.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    bc_ids = settings.tiktok.bc_ids
    if jobs and isinstance(bc_ids, list):
        sync_polls(scheduler, jobs, bc_ids, settings, claims=claims)
    return scheduler


def sync_polls(
    scheduler: AsyncIOScheduler,
    jobs: Jobs,
    bc_ids: Sequence[str],
    settings: Settings,
    *,
    claims: TickClaims | None = None,
) -> tuple[list[str], list[str]]:
    """Make ``jobs``' polls exactly those of ``bc_ids``: new business centers get a job (first
    run now), gone ones lose theirs. Returns the bc_ids added and removed.

    ``max_instances=1`` and ``coalesce`` keep a slow poll from piling up runs behind it.
    """
    wanted = list(dict.fromkeys(bc_ids))
    first = datetime.now(UTC)
    index = len(scheduler.get_jobs())
    added: set[str] = set()
    removed: set[str] = set()
    for poller, interval in jobs:
        for bc_id in wanted:
            if scheduler.get_job(job_id(poller, bc_id)) is not None:
                continue
            continuous = poller.continuous and settings.poll.balance_sweeps == "continuous"
            run = (
                _continuous(scheduler, poller, interval, settings.poll.min_gap_s, claims)
                if continuous
                else _paced(poller, interval, claims)
            )
            scheduler.add_job(
                run,
                trigger="interval",
                seconds=interval,
                jitter=settings.poll.jitter_s or None,
                args=[bc_id],
                id=job_id(poller, bc_id),
                # Spread first runs a little so jobs do not all start on one tick.
                next_run_time=first + timedelta(milliseconds=50 * index),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )
            added.add(bc_id)
            index += 1
        prefix, suffix = f"{poller.source}:", f"@{poller.connection}"
        for job in scheduler.get_jobs():
            if not (job.id.startswith(prefix) and job.id.endswith(suffix)):
                continue
            bc_id = job.id[len(prefix) : -len(suffix)]
            if bc_id not in wanted:
                job.remove()
                removed.add(bc_id)
    return sorted(added), sorted(removed)


def watch_business_centers(
    scheduler: AsyncIOScheduler,
    jobs: Jobs,
    list_bc_ids: Callable[[], Awaitable[list[str]]],
    settings: Settings,
    *,
    connection: str,
    claims: TickClaims | None = None,
) -> None:
    """``bc_ids: discover``: list the connection's business centers now and every
    ``tiktok.discover_interval_s``, and poll exactly those. A failed listing keeps the polls
    as they are (they then fail too, and a revoked token raises ``source.auth_failed``)."""

    async def discover() -> None:
        try:
            bc_ids = await list_bc_ids()
        except TikTokError as error:
            log.error(
                "poll.discover_failed", connection=connection, code=error.code, error=str(error)
            )
            return
        added, removed = sync_polls(scheduler, jobs, bc_ids, settings, claims=claims)
        if added or removed:
            log.info("poll.discovered", connection=connection, added=added, removed=removed)

    scheduler.add_job(
        discover,
        trigger="interval",
        seconds=settings.tiktok.discover_interval_s,
        id=f"discover:@{connection}",
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
    )
