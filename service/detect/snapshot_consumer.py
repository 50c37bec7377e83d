"""The detectors' stream handler: decode a batch of snapshots, evaluate, commit state and alerts.

A batch is read from the stream in one go; its snapshots are grouped by the state they
advance (an advertiser's ``AccountState``, a business center's ``CenterState``), folded over
that state in stream order, and every touched state is committed with its transitions in one
transaction (``StateStore.apply_many``): one read and one write per batch, not per snapshot.
Account snapshots (balances, spend, transactions) go through ``evaluate.evaluate`` with the
advertiser's ledger; business-center snapshots (source status, the center's balance) through
``center.evaluate``.

Usage::

    detector = Detector(accounts, centers, ledger, dead_letters, settings.detect, watch)
    transitions = await detector.handle_batch([(payload, entry_id), ...])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from functools import partial

import structlog

from config.settings import DetectSettings
from service import metrics
from service.deadletter import DeadLetters
from service.detect import center
from service.detect.center import CenterSnapshot
from service.detect.evaluate import evaluate
from service.detect.facts import AccountSnapshot
from service.detect.figures import remembered_burns
from service.detect.ledger_store import LedgerStore
from service.detect.risk import RiskForecasts
from service.detect.rule_failures import RuleHealth, RuleRun
from service.detect.staleness import StalenessWatch
from service.detect.state import AccountState, CenterState, Evaluation, StateStore, Step, fold
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import (
    AccountBalanceSnapshot,
    BcBalanceSnapshot,
    SourceStatusSnapshot,
    parse_snapshot,
)

__all__ = ["Detector"]

log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class Detector:
    """Applies snapshots to detector state; malformed entries go to the dead-letter stream."""

    _: KW_ONLY
    accounts: StateStore[AccountState]
    centers: StateStore[CenterState]
    ledger: LedgerStore
    dead_letters: DeadLetters
    settings: DetectSettings
    watch: StalenessWatch | None = None
    rule_health: RuleHealth | None = None
    risk: RiskForecasts | None = None

    async def handle(self, payload: bytes, entry_id: str) -> list[AlertTransition]:
        """One entry (a reclaimed one): a batch of one."""
        return await self.handle_batch([(payload, entry_id)])

    async def handle_batch(self, entries: Sequence[tuple[bytes, str]]) -> list[AlertTransition]:
        """Apply a batch of (payload, entry id); malformed ones go to the dead-letter stream."""
        accounts, centers = await self._sort(entries)
        transitions = await self.centers.apply_many(
            {bc_id: _center_steps(snapshots) for bc_id, snapshots in centers.items()}
        )
        # The rules, the risk forecasts and the list rows all read each state's burn rate.
        with remembered_burns():
            transitions += await self._apply_accounts(accounts)
        applied = sum(map(len, accounts.values())) + sum(map(len, centers.values()))
        metrics.SNAPSHOTS_CONSUMED.labels(outcome="applied").inc(applied)
        for transition in transitions:
            metrics.ALERTS.labels(kind=transition.kind, status=transition.status).inc()
            log.info(
                "alert.transition",
                kind=transition.kind,
                status=transition.status,
                advertiser_id=transition.advertiser_id,
                alert_id=transition.alert_id,
            )
        return transitions

    async def _sort(
        self, entries: Sequence[tuple[bytes, str]]
    ) -> tuple[dict[str, list[AccountSnapshot]], dict[str, list[CenterSnapshot]]]:
        """The batch's snapshots by the state they advance, in stream order; the malformed
        ones set aside on the dead-letter stream."""
        accounts: dict[str, list[AccountSnapshot]] = {}
        centers: dict[str, list[CenterSnapshot]] = {}
        snapshots = await self.dead_letters.parsed(entries, parse_snapshot, source="snapshots")
        if rejected := len(entries) - len(snapshots):
            metrics.SNAPSHOTS_CONSUMED.labels(outcome="rejected").inc(rejected)
        for snapshot in snapshots:
            if isinstance(snapshot, SourceStatusSnapshot | BcBalanceSnapshot):
                centers.setdefault(snapshot.bc_id, []).append(snapshot)
            else:
                accounts.setdefault(snapshot.advertiser_id, []).append(snapshot)
        return accounts, centers

    async def _apply_accounts(
        self, accounts: dict[str, list[AccountSnapshot]]
    ) -> list[AlertTransition]:
        if not accounts:
            return []
        ledgers = await self.ledger.for_advertisers(accounts)
        run = RuleRun()
        steps: dict[str, Step[AccountState]] = {}
        # The states the batch leaves behind, of accounts whose balance it brought.
        after: dict[str, AccountState] = {}
        for advertiser_id, snapshots in accounts.items():
            ledger = ledgers[advertiser_id]
            each = [
                partial(evaluate, snapshot=s, ledger=ledger, settings=self.settings, run=run)
                for s in snapshots
            ]
            steps[advertiser_id] = partial(fold, steps=each)
            if self.risk is not None and any(
                isinstance(s, AccountBalanceSnapshot) for s in snapshots
            ):
                steps[advertiser_id] = partial(_kept, steps[advertiser_id], after, advertiser_id)
        transitions = await self.accounts.apply_many(steps)
        if self.risk is not None and after:
            await self.risk.record({a: (state, ledgers[a]) for a, state in after.items()})
        if self.rule_health is not None:
            await self.rule_health.record(run)
        if self.watch is not None:
            await self.watch.seen(
                s
                for snapshots in accounts.values()
                for s in snapshots
                if isinstance(s, AccountBalanceSnapshot)
            )
        return transitions


def _kept(
    step: Step[AccountState],
    into: dict[str, AccountState],
    advertiser_id: str,
    state: AccountState | None,
) -> Evaluation[AccountState] | None:
    """``step``, keeping the state it leaves (a retried commit runs it again: the last wins)."""
    result = step(state)
    if result is not None:
        into[advertiser_id] = result.state
    return result


def _center_steps(snapshots: list[CenterSnapshot]) -> Step[CenterState]:
    return partial(fold, steps=[partial(center.evaluate, snapshot=s) for s in snapshots])
