"""The detectors' stream handler: decode one snapshot, evaluate it, commit state and alerts.

Account snapshots (balances, spend, transactions) go through ``evaluate.evaluate`` with the
advertiser's ledger into its ``AccountState``; business-center snapshots (source status, the
center's balance) through ``center.evaluate`` into its ``CenterState``.

Usage::

    detector = Detector(accounts, centers, ledger, dead_letters, settings.detect, watch)
    transitions = await detector.handle(payload, entry_id)
"""

from __future__ import annotations

import structlog

from config.settings import DetectSettings
from service import metrics
from service.alerts import AlertTransition
from service.deadletter import DeadLetters
from service.detect import center
from service.detect.evaluate import evaluate
from service.detect.staleness import StalenessWatch
from service.detect.state import AccountState, CenterState, StateStore
from service.ledger_store import LedgerStore
from workers.snapshots import (
    AccountBalanceSnapshot,
    BcBalanceSnapshot,
    SourceStatusSnapshot,
    parse_snapshot,
)

__all__ = ["Detector"]

log = structlog.get_logger(__name__)


class Detector:
    """Applies snapshots to detector state; malformed entries go to the dead-letter stream."""

    def __init__(
        self,
        *,
        accounts: StateStore[AccountState],
        centers: StateStore[CenterState],
        ledger: LedgerStore,
        dead_letters: DeadLetters,
        settings: DetectSettings,
        watch: StalenessWatch | None = None,
    ) -> None:
        self._accounts = accounts
        self._centers = centers
        self._ledger = ledger
        self._dead_letters = dead_letters
        self._settings = settings
        self._watch = watch

    async def handle(self, payload: bytes, entry_id: str) -> list[AlertTransition]:
        try:
            snapshot = parse_snapshot(payload)
        except ValueError as error:
            metrics.SNAPSHOTS_CONSUMED.labels(outcome="rejected").inc()
            await self._dead_letters.put(
                source="snapshots",
                reason="malformed",
                payload=payload,
                error=str(error),
                entry_id=entry_id,
            )
            return []
        if isinstance(snapshot, SourceStatusSnapshot | BcBalanceSnapshot):
            transitions = await self._centers.apply(
                snapshot.bc_id, lambda state: center.evaluate(state, snapshot)
            )
        else:
            ledger = await self._ledger.for_advertiser(snapshot.advertiser_id)
            transitions = await self._accounts.apply(
                snapshot.advertiser_id,
                lambda state: evaluate(state, snapshot, ledger, self._settings),
            )
            if self._watch is not None and isinstance(snapshot, AccountBalanceSnapshot):
                await self._watch.seen(snapshot)
        metrics.SNAPSHOTS_CONSUMED.labels(outcome="applied").inc()
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
