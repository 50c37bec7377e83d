"""The detectors' stream handler: decode one snapshot, evaluate it, commit state and alerts.

Usage::

    detector = Detector(store, dead_letters, settings.detect)
    transitions = await detector.handle(payload, entry_id)
"""

from __future__ import annotations

import structlog

from config.settings import DetectSettings
from service import metrics
from service.alerts import AlertTransition
from service.deadletter import DeadLetters
from service.detect import credit_balance
from service.detect.state import StateStore
from workers.snapshots import parse_snapshot

__all__ = ["Detector"]

log = structlog.get_logger(__name__)


class Detector:
    """Applies snapshots to per-account state; malformed entries go to the dead-letter stream."""

    def __init__(self, store: StateStore, dead_letters: DeadLetters, settings: DetectSettings):
        self._store = store
        self._dead_letters = dead_letters
        self._settings = settings

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
        thresholds = self._settings.thresholds_for(snapshot.advertiser_id)
        transitions = await self._store.apply(
            snapshot.advertiser_id,
            lambda state: credit_balance.evaluate(state, snapshot, thresholds),
        )
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
