"""``data.stale``: no fresh balance snapshot for an account for ``stale_intervals`` intervals.

Staleness is measured on the service's wall clock against real-time intervals
(``detect.stale_intervals`` x ``poll.balance_interval_s``), not in the API's time: when the
poller or the API stops, API time stops too, and only the wall clock notices. The detector
records, per advertiser, the wall time it last received a balance snapshot (a Redis hash,
``<prefix>:fresh``); ``StalenessWatch`` checks it every interval and opens the episode
through the same atomic state store. The first check waits one full stale period after the
service starts, so a restart does not raise alerts about its own downtime. The episode
resolves on the next balance snapshot newer than the last one (``evaluate``).

Usage::

    watch = StalenessWatch(redis, accounts, settings.streams, interval_s=300, stale_after_s=900)
    await watch.seen(snapshots)               # the detector, per batch of balances
    async with watch: ...                     # the service role: checks until exit
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from functools import partial

import structlog
from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import DetectSettings, StreamSettings
from service.detect.episodes import Episodes, Rule, Value, close, open_, subject_of, who
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState, Evaluation, StateStore
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot
from workers.stopping import cancel_and_wait

__all__ = ["STALE", "StalenessWatch", "evaluate", "mark_stale"]

log = structlog.get_logger(__name__)

STALE = "data.stale"


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    """A fresh balance snapshot ends a stale episode."""
    if STALE not in state.open:
        return state, []
    episodes = Episodes.of(state)
    subject = subject_of(state)
    summary = f"Fresh data for {who(subject)} again."
    values = {"last_snapshot_at": snapshot.observed_at}
    transition = close(
        episodes, subject, Rule(STALE, "warning"), snapshot.observed_at, (summary, values)
    )
    return episodes.updated(state), [transition]


def mark_stale(
    state: AccountState | None, *, silent_for: timedelta, last_seen: datetime
) -> Evaluation[AccountState] | None:
    """Open a stale episode for an account silent for ``silent_for`` since the balance taken
    at ``last_seen``; None if already open, or if a newer balance has arrived meanwhile."""
    if state is None or state.last_observed_at is None or STALE in state.open:
        return None
    if state.last_observed_at > last_seen:
        return None
    episodes = Episodes.of(state)
    subject = subject_of(state)
    minutes = silent_for.total_seconds() / 60
    summary = (
        f"No fresh balance data for {who(subject)} for {minutes:.1f} min (real time): alerts "
        "about it may be late. Check the poller, the token and the account's access."
    )
    values: dict[str, Value] = {
        "last_snapshot_at": state.last_observed_at,
        "silent_for_s": f"{silent_for.total_seconds():.0f}",
    }
    # The episode starts at the last fresh data (API time): that names it uniquely, as the
    # previous one ended at (not after) that same fresh snapshot, so the same-instant guard
    # does not apply here.
    episodes.closed.pop(STALE, None)
    transitions = open_(
        episodes, subject, Rule(STALE, "warning"), state.last_observed_at, (summary, values)
    )
    return Evaluation(episodes.updated(state), transitions)


@dataclass(eq=False, slots=True)
class StalenessWatch:
    """Remembers when each account last had a balance snapshot; flags the silent ones."""

    redis: Redis
    accounts: StateStore[AccountState]
    streams: StreamSettings
    _: KW_ONLY
    interval_s: float
    stale_after_s: float
    clock: Callable[[], float] = time.time
    _key: str = field(init=False, repr=False)
    _started: float = field(init=False, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = self.streams.keyspace.fresh()
        self._started = self.clock()

    async def seen(self, snapshots: Iterable[AccountBalanceSnapshot]) -> None:
        """Note balance snapshots' arrival: wall time, and the API time each was taken at."""
        wall = repr(self.clock())
        newest_last = sorted(snapshots, key=lambda snapshot: snapshot.observed_at)
        marks = {s.advertiser_id: f"{wall} {s.observed_at.isoformat()}" for s in newest_last}
        if marks:
            await self.redis.hset(self._key, mapping=marks)  # type: ignore[arg-type]

    async def check(self) -> list[AlertTransition]:
        """One pass over every account; returns the transitions it committed."""
        now = self.clock()
        if now - self._started < self.stale_after_s:
            return []
        transitions: list[AlertTransition] = []
        fresh = await self.redis.hgetall(self._key)
        for raw_id, raw_mark in fresh.items():
            wall, _, observed = decoded(raw_mark).partition(" ")
            silent = now - float(wall)
            if silent <= self.stale_after_s:
                continue
            evaluate = partial(
                mark_stale,
                silent_for=timedelta(seconds=silent),
                last_seen=datetime.fromisoformat(observed),
            )
            transitions += await self.accounts.apply(decoded(raw_id), evaluate)
        return transitions

    async def __aenter__(self) -> StalenessWatch:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="staleness-watch")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # a Redis hiccup must not end the watch for good
                log.exception("staleness.check_failed")
