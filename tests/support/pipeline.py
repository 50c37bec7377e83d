"""An in-process pipeline for scenario tests: sandbox app → client → pollers → evaluator.

No sockets and no Redis: the sandbox is called through ``httpx.ASGITransport`` and snapshots
are evaluated as they are polled, in order, with the same pure rules the service runs. The
real path (Redis, consumer groups, webhooks) is covered by ``test_lifecycle_end_to_end``.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from pydantic import SecretStr

from config.settings import DetectSettings, TikTokSettings
from service.detect import center
from service.detect.evaluate import evaluate
from service.detect.ledger_store import ConfigLedger
from service.detect.state import AccountState, CenterState
from workers.bc_balance_poller import BcBalancePoller
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import BcBalanceSnapshot, Snapshot, SourceStatusSnapshot
from workers.poller import BalancePoller, SourcePoller
from workers.sandbox import Sandbox, Scenario
from workers.spend_poller import CostPoller, ReportPoller
from workers.tiktok import TikTokClient
from workers.transaction_poller import TransactionPoller


class ListPublisher:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []

    async def publish(self, snapshots: list[Snapshot]) -> int:
        self.snapshots.extend(snapshots)
        return len(snapshots)


class Pipeline:
    """``await pipe.step(hours)``: advance the sandbox, poll every source, evaluate."""

    def __init__(self, scenario: Scenario, settings: DetectSettings | None = None) -> None:
        # Each request lands in its own (fake) second: the sandbox never throttles the test.
        ticks = itertools.count()
        self.sandbox = Sandbox(scenario, speed=0, monotonic=lambda: float(next(ticks)))
        self.settings = settings or DetectSettings()
        self.ledger = ConfigLedger(scenario.ledger.credits, scenario.ledger.ladder_programs)
        self.publisher = ListPublisher()
        self.rejected: list[dict[str, Any]] = []
        self.accounts: dict[str, AccountState] = {}
        self.centers: dict[str, CenterState] = {}
        self.transitions: list[AlertTransition] = []
        self.bc_ids = [bc.bc_id for bc in scenario.business_centers]
        self.client = TikTokClient(
            TikTokSettings(
                base_url="http://sandbox/open_api/v1.3",
                access_token=SecretStr(scenario.access_token),
                # Far above any tier: these tests are not about our budget.
                qps=1000,
                qpm=60_000,
                max_retries=0,
                # A throttle fails the poll at once (the clock stands still between steps).
                suspension_s=0,
            ),
            transport=httpx.ASGITransport(app=self.sandbox.app),
        )
        api: Any = self.client
        self.pollers: list[SourcePoller] = [
            BalancePoller(api, self.publisher, reject=self._reject),
            CostPoller(api, self.publisher, reject=self._reject, lookback_days=3),
            TransactionPoller(api, self.publisher, reject=self._reject),
            ReportPoller(api, self.publisher, reject=self._reject, lookback_days=3),
            BcBalancePoller(api, self.publisher, reject=self._reject),
        ]

    async def _reject(self, **fields: Any) -> None:
        self.rejected.append(fields)

    async def poll(self) -> None:
        start = len(self.publisher.snapshots)
        for poller in self.pollers:
            for bc_id in self.bc_ids:
                await poller.poll(bc_id)
        for snapshot in self.publisher.snapshots[start:]:
            await self.apply(snapshot)

    async def apply(self, snapshot: Snapshot) -> list[AlertTransition]:
        """Evaluate one snapshot as the detector would (state kept in memory)."""
        if isinstance(snapshot, SourceStatusSnapshot | BcBalanceSnapshot):
            result_c = center.evaluate(self.centers.get(snapshot.bc_id), snapshot)
            if result_c is None:
                return []
            self.centers[snapshot.bc_id] = result_c.state
            emitted = result_c.transitions
        else:
            ledger = await self.ledger.for_advertiser(snapshot.advertiser_id)
            state = self.accounts.get(snapshot.advertiser_id)
            result = evaluate(state, snapshot, ledger, self.settings)
            if result is None:
                return []
            self.accounts[snapshot.advertiser_id] = result.state
            emitted = result.transitions
        self.transitions.extend(emitted)
        return emitted

    def advance(self, hours: float) -> None:
        self.sandbox.clock.advance(hours * 3600)
        self.sandbox.sync()

    async def run(self, hours: float, every_h: float = 1.0) -> None:
        """Poll, then advance ``every_h`` and poll again, until ``hours`` have passed."""
        elapsed = 0.0
        await self.poll()
        while elapsed < hours - 1e-9:
            self.advance(every_h)
            elapsed += every_h
            await self.poll()

    def kinds(self, advertiser_id: str | None = None) -> list[tuple[str, str]]:
        return [
            (t.kind, t.status)
            for t in self.transitions
            if advertiser_id is None or t.advertiser_id == advertiser_id
        ]

    async def aclose(self) -> None:
        await self.client.aclose()
