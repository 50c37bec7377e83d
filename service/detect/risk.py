"""Risk forecasts: which accounts the poller should poll on their own, and when.

After each batch the detector asks, for every account it saw a balance of: when does its ad
credit run out, or cross the low line if it is still above it, at the burn rate the depletion
forecast uses (``figures.grant_burn``)? Within ``detect.risk_horizon_s`` the account is marked
at risk with that moment (``workers.risk_marks``); otherwise, or once the credit is gone, it
is unmarked. The moment is written on the local clock, ``time.time()`` plus the forecast's
distance from the state's API now, since that is the clock the poller waits on.

Usage::

    risk = RiskForecasts(RiskMarks(redis, streams), settings.detect)
    await risk.record({advertiser_id: (state, ledger), ...})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass

import structlog
from redis.exceptions import RedisError

from config.settings import DetectSettings
from service.detect.credit_balance import low_line
from service.detect.figures import grant_burn
from service.detect.forecast import exhaustion_at
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.risk_marks import RiskMarks

__all__ = ["RiskForecasts"]

log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class RiskForecasts:
    """Marks and unmarks at-risk accounts from their states."""

    marks: RiskMarks
    settings: DetectSettings
    _: KW_ONLY
    clock: Callable[[], float] = time.time

    def moment(self, state: AccountState, ledger: AccountLedger) -> float | None:
        """Local Unix time the credit runs out or crosses the low line; None: not at risk."""
        if state.valid_grant <= 0 or state.last_observed_at is None or state.now is None:
            return None
        per_day = grant_burn(state, self.settings, ledger)
        if per_day is None or per_day <= 0:
            return None
        line = low_line(state.peak_grant, self.settings.thresholds_for(state.advertiser_id))
        left = state.valid_grant - line if state.valid_grant > line else state.valid_grant
        at = exhaustion_at(left, per_day, state.last_observed_at)
        if at is None:
            return None
        ahead_s = (at - state.now).total_seconds()
        if ahead_s > self.settings.risk_horizon_s:
            return None
        return self.clock() + ahead_s

    async def record(self, seen: Mapping[str, tuple[AccountState, AccountLedger]]) -> None:
        """Mark or unmark each account of ``seen`` (one round trip for all)."""
        at_risk: dict[tuple[str, str], float] = {}
        safe: list[tuple[str, str]] = []
        for advertiser_id, (state, ledger) in seen.items():
            if state.profile is None:
                continue
            account = (state.profile.bc_id, advertiser_id)
            moment = self.moment(state, ledger)
            if moment is None:
                safe.append(account)
            else:
                at_risk[account] = moment
        try:
            await self.marks.update(at_risk=at_risk, safe=safe)
        except (RedisError, OSError) as error:
            # Only an early poll is lost: the sweeps still see every account.
            log.warning("risk.write_failed", error=str(error), accounts=len(seen))
