"""Risk polls: an account forecast to run out is polled on its own when that moment comes.

The detector marks accounts whose credit its forecast says runs out (or crosses the low line)
soon (``workers.risk_marks``). Once an account's moment has come, and until the detector
unmarks it (it has run out, or a later balance moved its forecast on), the balance poller of
its business center polls it alone, ``filtering.keyword`` = its id and page size 1, at most
every ``poll.risk_repoll_s``: one request at balance rank, instead of waiting for the sweep to
reach its page. The polls of one connection go one at a time, so they cannot crowd out the
sweeps; with replicas each poll is claimed per ``risk_repoll_s`` tick, so none is made twice.

Usage::

    risks = RiskPolls(balance_poller, RiskMarks(redis, streams), repoll_s=5, claims=claims)
    async with risk_polling([risks]):      # every second, until the block exits
        ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Container, Sequence
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field

import structlog
from redis.exceptions import RedisError

from workers.claims import TickClaims
from workers.poller import BalancePoller
from workers.priorities import Fixed, Priority, claiming
from workers.risk_marks import RiskMarks
from workers.stopping import cancel_and_wait

__all__ = ["RiskPolls", "risk_polling"]

log = structlog.get_logger(__name__)

# How often the marks are read: a due account waits at most this long for its poll.
CHECK_S = 1.0


@dataclass(eq=False, slots=True)
class RiskPolls:
    """Keyword polls of the due at-risk accounts of the business centers in ``centers``."""

    poller: BalancePoller
    marks: RiskMarks
    _: KW_ONLY
    repoll_s: float
    centers: Container[str]
    claims: TickClaims | None = None
    clock: Callable[[], float] = time.time
    polls: int = field(default=0, init=False)
    # account -> when this replica last polled it.
    _polled: dict[tuple[str, str], float] = field(default_factory=dict, init=False, repr=False)

    async def run(self) -> int:
        """Poll every due account not polled in the last ``repoll_s``; returns how many."""
        now = self.clock()
        try:
            due = await self.marks.due(until=now)
        except (RedisError, OSError) as error:
            log.warning("risk.read_failed", error=str(error))
            return 0
        self._polled = {k: at for k, at in self._polled.items() if now - at < self.repoll_s}
        polled = 0
        for bc_id, advertiser_id, _moment in due:
            account = (bc_id, advertiser_id)
            if bc_id not in self.centers or account in self._polled:
                continue
            if self.claims is not None:
                job = f"risk:{bc_id}:{advertiser_id}@{self.poller.connection}"
                if await self.claims.claim(job, self.repoll_s) is None:
                    continue  # another replica polls it this tick
            self._polled[account] = self.clock()
            with claiming(Fixed(Priority.BALANCES)):
                result = await self.poller.poll_account(bc_id, advertiser_id)
            if result is not None and result.published == 0 and result.rejected == 0:
                # The API no longer lists it here: nothing to watch.
                await self.marks.forget(bc_id, advertiser_id)
            polled += 1
        self.polls += polled
        return polled


@asynccontextmanager
async def risk_polling(risks: Sequence[RiskPolls]) -> AsyncIterator[None]:
    """Run each of ``risks`` about every second, one run at a time, until the block exits."""

    async def loop(each: RiskPolls) -> None:
        while True:
            try:
                await each.run()
            except Exception as error:  # a failed round must not end the loop
                log.warning("risk.poll_failed", error=str(error))
            await asyncio.sleep(CHECK_S)

    tasks = [asyncio.create_task(loop(each)) for each in risks]
    try:
        yield
    finally:
        await cancel_and_wait(tasks)
