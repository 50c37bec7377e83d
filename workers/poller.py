"""Poll: APScheduler jobs, one per (source, business center), turn API replies into snapshots.

``SourcePoller`` is the plumbing every source shares: one poll fetches and validates rows,
publishes the valid ones in one round trip, and sets invalid rows aside (logged with their id,
counted, dead-lettered) so the others still publish. An API error fails that poll only: the
next interval tries again. A 40105/40104 publishes a ``source_status`` snapshot
(``auth_failed``), and the next poll that gets through publishes ``ok``, so the detectors can
raise and resolve ``source.auth_failed``. Snapshots are stamped with the API's own time (the
reply's ``Date`` header, see ``workers.tiktok.reply_time``).

Sources: ``BalancePoller`` here (``/advertiser/balance/get/``); ``spend_poller``,
``transaction_poller`` and ``bc_balance_poller`` for the others.

Usage::

    poller = BalancePoller(client, publisher, reject=dead_letters_put)
    scheduler = schedule([(poller, 300.0)], settings)   # AsyncIOScheduler, one job per bc_id
    scheduler.start()
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from config.settings import Settings
from workers import metrics, wire
from workers.claims import TickClaims
from workers.snapshots import AccountBalanceSnapshot, Snapshot, SourceStatusSnapshot
from workers.tiktok import AuthError, TikTokError, reply_time

__all__ = [
    "BalancePoller",
    "Clock",
    "PollResult",
    "Publisher",
    "Reject",
    "SourcePoller",
    "WindowedPoller",
    "schedule",
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


@dataclass(frozen=True)
class PollResult:
    bc_id: str
    published: int
    rejected: int


class SourcePoller:
    """One source's polls: subclasses say how to ``collect`` snapshots for a business center.

    ``clock`` gives ``observed_at``; by default the API's time from the last reply.
    """

    source: ClassVar[str]

    def __init__(self, publisher: Publisher, *, reject: Reject, clock: Clock = reply_time):
        self._publisher = publisher
        self._reject = reject
        self._clock = clock
        self._in_flight: set[asyncio.Task[object]] = set()
        # A business center's first good poll in this process, and the first after a failed
        # one, publish an ``ok`` status: that resolves an auth alert, even across restarts.
        self._reported: set[str] = set()
        self._auth_failed: set[str] = set()

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        """Fetch and validate; returns the valid snapshots and how many rows were rejected."""
        raise NotImplementedError

    async def drain(self, timeout_s: float) -> None:
        """Let polls under way finish (up to ``timeout_s``), so a stop loses no fetched data."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)

    async def poll(self, bc_id: str) -> PollResult | None:
        """One poll of ``bc_id``; returns None if the API call failed (logged and counted)."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        try:
            snapshots, rejected = await self.collect(bc_id)
        except AuthError as error:
            metrics.POLLS.labels(source=self.source, outcome="auth_failed").inc()
            log.error(
                "poll.auth_failed",
                source=self.source,
                bc_id=bc_id,
                code=error.code,
                error=str(error),
            )
            self._auth_failed.add(bc_id)
            self._reported.add(bc_id)
            await self._publisher.publish([self._status(bc_id, "auth_failed", error.code)])
            return None
        except TikTokError as error:
            metrics.POLLS.labels(source=self.source, outcome="error").inc()
            log.warning(
                "poll.failed", source=self.source, bc_id=bc_id, code=error.code, error=str(error)
            )
            return None
        if bc_id in self._auth_failed or bc_id not in self._reported:
            self._auth_failed.discard(bc_id)
            self._reported.add(bc_id)
            snapshots.append(self._status(bc_id, "ok", None))
        published = await self._publisher.publish(snapshots)
        metrics.POLLS.labels(source=self.source, outcome="ok").inc()
        log.debug(
            "poll.done", source=self.source, bc_id=bc_id, published=published, rejected=rejected
        )
        return PollResult(bc_id=bc_id, published=published, rejected=rejected)

    def _status(self, bc_id: str, status: str, code: int | None) -> SourceStatusSnapshot:
        return SourceStatusSnapshot.model_validate(
            {
                "bc_id": bc_id,
                "source": self.source,
                "status": status,
                "code": code,
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


class BalanceSource(Protocol):
    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]: ...


class BalancePoller(SourcePoller):
    """Balances of every ad account of a business center: one snapshot per advertiser."""

    source = "advertiser_balance"

    def __init__(
        self, api: BalanceSource, publisher: Publisher, *, reject: Reject, clock: Clock = reply_time
    ) -> None:
        super().__init__(publisher, reject=reject, clock=clock)
        self._api = api

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        rows = await self._api.advertiser_balances(bc_id)
        observed_at = self._clock()
        return await self.validated(
            rows,
            lambda row: AccountBalanceSnapshot.from_api(row, bc_id=bc_id, observed_at=observed_at),
            lambda row: row.get("advertiser_id", "?"),
            bc_id=bc_id,
        )


A = TypeVar("A")


class WindowedPoller(SourcePoller, Generic[A]):
    """A source re-read over a trailing window of days on every poll (spend, transactions).

    Figures lag and are revised, and windows overlap on purpose: the detectors replace or
    deduplicate, so re-reading costs requests, never correctness.
    """

    def __init__(
        self,
        api: A,
        publisher: Publisher,
        *,
        reject: Reject,
        lookback_days: int = 7,
        clock: Clock = reply_time,
    ) -> None:
        super().__init__(publisher, reject=reject, clock=clock)
        self._api = api
        self._lookback_days = lookback_days


def _claimed(
    poller: SourcePoller, interval_s: float, claims: TickClaims
) -> Callable[[str], Awaitable[PollResult | None]]:
    """The poll job of one replica among several: it polls only the ticks it claims."""

    async def poll(bc_id: str) -> PollResult | None:
        if await claims.claim(f"{poller.source}:{bc_id}", interval_s) is None:
            return None  # another replica has this tick
        return await poller.poll(bc_id)

    return poll


def schedule(
    jobs: Sequence[tuple[SourcePoller, float]],
    settings: Settings,
    *,
    claims: TickClaims | None = None,
) -> AsyncIOScheduler:
    """An AsyncIOScheduler with one job per (poller, business center), first runs now.

    ``jobs`` pairs each poller with its interval in seconds. ``max_instances=1`` and
    ``coalesce`` keep a slow poll from piling up runs behind it.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    first = datetime.now(UTC)
    index = 0
    for poller, interval in jobs:
        for bc_id in settings.tiktok.bc_ids:
            scheduler.add_job(
                poller.poll if claims is None else _claimed(poller, interval, claims),
                trigger="interval",
                seconds=interval,
                jitter=settings.poll.jitter_s or None,
                args=[bc_id],
                id=f"{poller.source}:{bc_id}",
                # Spread first runs a little so jobs do not all start on one tick.
                next_run_time=first + timedelta(milliseconds=50 * index),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )
            index += 1
    return scheduler
