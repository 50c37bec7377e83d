"""Poll: one APScheduler job per business center turns API replies into published snapshots.

Every ``poll.balance_interval_s`` the job pages through ``/advertiser/balance/get/`` for its
business center and publishes one ``AccountBalanceSnapshot`` per advertiser. A row that fails
validation is logged with its advertiser id, counted and handed to ``reject`` (the dead-letter
stream); the other rows still publish. An API error fails that poll only: the next interval
tries again.

Usage::

    poller = BalancePoller(client, publisher, reject=dead_letters_put)
    scheduler = schedule(poller, settings)      # AsyncIOScheduler, one job per bc_id
    scheduler.start()
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import ValidationError

from config.settings import Settings
from workers import metrics, wire
from workers.snapshots import AccountBalanceSnapshot, Snapshot
from workers.tiktok import AuthError, TikTokError

__all__ = ["BalancePoller", "PollResult", "Reject", "schedule"]

log = structlog.get_logger(__name__)

SOURCE = "advertiser_balance"


class Reject(Protocol):
    """Where rows that fail validation are set aside (the dead-letter stream)."""

    def __call__(
        self, *, source: str, reason: str, payload: bytes, error: str, entry_id: str = ""
    ) -> Awaitable[None]: ...


class BalanceSource(Protocol):
    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]: ...


class Publisher(Protocol):
    async def publish(self, snapshots: list[Snapshot]) -> int: ...


@dataclass(frozen=True)
class PollResult:
    bc_id: str
    published: int
    rejected: int


class BalancePoller:
    """Polls balances of one business center at a time and publishes the snapshots."""

    def __init__(
        self,
        api: BalanceSource,
        publisher: Publisher,
        *,
        reject: Reject,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._publisher = publisher
        self._reject = reject
        self._clock = clock
        self._in_flight: set[asyncio.Task[object]] = set()

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
            rows = await self._api.advertiser_balances(bc_id)
        except AuthError as error:
            metrics.POLLS.labels(source=SOURCE, outcome="auth_failed").inc()
            log.error("poll.auth_failed", bc_id=bc_id, code=error.code, error=str(error))
            return None
        except TikTokError as error:
            metrics.POLLS.labels(source=SOURCE, outcome="error").inc()
            log.warning("poll.failed", bc_id=bc_id, code=error.code, error=str(error))
            return None
        observed_at = self._clock()
        snapshots: list[Snapshot] = []
        rejected = 0
        for row in rows:
            try:
                snapshots.append(
                    AccountBalanceSnapshot.from_api(row, bc_id=bc_id, observed_at=observed_at)
                )
            except ValidationError as error:
                rejected += 1
                await self._reject_row(bc_id, row, error)
        published = await self._publisher.publish(snapshots)
        metrics.POLLS.labels(source=SOURCE, outcome="ok").inc()
        log.debug("poll.done", bc_id=bc_id, published=published, rejected=rejected)
        return PollResult(bc_id=bc_id, published=published, rejected=rejected)

    async def _reject_row(self, bc_id: str, row: dict[str, Any], error: ValidationError) -> None:
        advertiser_id = str(row.get("advertiser_id", "?"))[:64]
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
        metrics.ACCOUNTS_REJECTED.labels(source=SOURCE).inc()
        log.warning(
            "poll.account_rejected", bc_id=bc_id, advertiser_id=advertiser_id, error=problems
        )
        try:
            payload = wire.dumps(row)
        except TypeError:
            payload = repr(row).encode()
        await self._reject(
            source=SOURCE,
            reason="invalid_account",
            payload=payload,
            error=problems,
            entry_id=f"{bc_id}:{advertiser_id}",
        )


def schedule(poller: BalancePoller, settings: Settings) -> AsyncIOScheduler:
    """An AsyncIOScheduler with one balance job per business center, first run now.

    ``max_instances=1`` and ``coalesce`` keep a slow poll from piling up runs behind it.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    interval = settings.poll.balance_interval_s
    first = datetime.now(UTC)
    for index, bc_id in enumerate(settings.tiktok.bc_ids):
        scheduler.add_job(
            poller.poll,
            trigger="interval",
            seconds=interval,
            jitter=settings.poll.jitter_s or None,
            args=[bc_id],
            id=f"{SOURCE}:{bc_id}",
            # Spread first runs a little so business centers do not all start on one tick.
            next_run_time=first + timedelta(milliseconds=50 * index),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
        )
    return scheduler
