"""Tick claims: several poller replicas, and each business center polled by one of them per tick.

Time is cut into ticks of the job's interval; tick ``n`` covers ``[n*interval, (n+1)*interval)``
of the Unix clock. Before a run, a replica claims the current tick of that job with one
``SET key owner NX PX`` in Redis; only the replica that set it runs. The tick number is the
fencing token. If the replica that would poll dies, the next tick is free for any other:
polling resumes within one to two intervals, with no lease to expire or renew.

Continuous balance sweeps have no tick: a sweep is claimed as a whole (``sweep``, a
``SET NX PX`` lease held while it runs, given back by its owner with the time it finished).
Replicas then take turns, never sweeping one business center at once; a lease whose owner
died expires after two intervals, as a tick would. ``last_done`` is when any replica last
finished a sweep of the job, so each knows whether the next one is due.

Usage::

    claims = TickClaims(redis, settings.streams, owner="host-1:4242")
    if await claims.claim("advertiser_balance:7001", interval_s=300) is not None:
        await poller.poll("7001")
    lease = await claims.sweep("advertiser_balance:7001", interval_s=300)
    if lease is not None:
        try:
            await poller.poll("7001")
        finally:
            await claims.release(lease, done=True)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from redis.asyncio import Redis

from config.settings import StreamSettings

__all__ = ["SweepLease", "TickClaims"]

# Give the lease back only if it is still ours, and note when the sweep finished.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class SweepLease:
    job_id: str
    token: str
    interval_s: float


@dataclass(frozen=True, eq=False, slots=True)
class TickClaims:
    """Claims ticks of named jobs in Redis; one winner per job and tick."""

    redis: Redis
    streams: StreamSettings
    _: KW_ONLY
    owner: str
    clock: Callable[[], float] = time.time

    async def claim(self, job_id: str, interval_s: float) -> int | None:
        """The current tick number if this replica won it, else None."""
        tick = int(self.clock() // interval_s)
        key = self.streams.keyspace.claim(job_id, str(tick))
        # Kept for two intervals: long enough that a late runner of the same tick still loses.
        won = await self.redis.set(key, self.owner, nx=True, px=max(1, int(interval_s * 2000)))
        return tick if won else None

    def _sweep_keys(self, job_id: str) -> tuple[str, str]:
        return self.streams.keyspace.sweep(job_id)

    async def sweep(self, job_id: str, interval_s: float) -> SweepLease | None:
        """The lease of one sweep of ``job_id`` if no replica holds it, else None."""
        lease, _ = self._sweep_keys(job_id)
        token = f"{self.owner}:{secrets.token_hex(8)}"
        ttl_ms = max(1, int(interval_s * 2000))
        won = await self.redis.set(lease, token, nx=True, px=ttl_ms)
        return SweepLease(job_id, token, interval_s) if won else None

    async def release(self, lease: SweepLease, *, done: bool) -> None:
        """Give ``lease`` back; ``done``: the sweep succeeded, so note when it finished."""
        key, done_key = self._sweep_keys(lease.job_id)
        finished = repr(self.clock()) if done else ""
        keep_ms = max(1, int(lease.interval_s * 10_000))
        await self.redis.eval(_RELEASE, 2, key, done_key, lease.token, finished, str(keep_ms))

    async def last_done(self, job_id: str) -> float | None:
        """Unix time any replica last finished a sweep of ``job_id`` (None: not lately)."""
        raw = await self.redis.get(self._sweep_keys(job_id)[1])
        return None if raw is None else float(raw)
