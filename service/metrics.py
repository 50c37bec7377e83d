"""Prometheus metrics of the service role (detectors, notifiers, dead letters).

The worker role's metrics live in ``workers/metrics.py``; both register in the default
registry, so one ``/metrics`` endpoint serves whatever runs in the process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "ALERTS",
    "DEADLETTERED",
    "DELIVERIES",
    "DELIVERIES_DEADLETTERED",
    "RETRY_QUEUE",
    "SNAPSHOTS_CONSUMED",
    "STATE_CONFLICTS",
    "STATE_CORRUPT",
    "SUBSCRIBERS_RESTARTED",
]

SNAPSHOTS_CONSUMED = Counter(
    "creditwatch_snapshots_consumed_total",
    "Snapshots read by the detectors, by outcome (applied, duplicate, rejected).",
    ["outcome"],
)
ALERTS = Counter(
    "creditwatch_alert_transitions_total",
    "Alert transitions emitted by the detectors.",
    ["kind", "status"],
)
DELIVERIES = Counter(
    "creditwatch_deliveries_total",
    "Deliveries of alert transitions, by receiver and outcome.",
    ["receiver", "outcome"],
)
DEADLETTERED = Counter(
    "creditwatch_deadlettered_total",
    "Entries set aside on the dead-letter stream, by where they came from.",
    ["source"],
)
STATE_CONFLICTS = Counter(
    "creditwatch_state_conflicts_total",
    "Detector state writes retried because another replica wrote first.",
)
STATE_CORRUPT = Counter(
    "creditwatch_state_corrupt_total",
    "Detector state entries that could not be read and were started afresh.",
)
SUBSCRIBERS_RESTARTED = Counter(
    "creditwatch_subscribers_restarted_total",
    "Stream subscribers restarted after Redis lost their consumer group (NOGROUP).",
)
DELIVERIES_DEADLETTERED = Counter(
    "creditwatch_deliveries_deadlettered_total",
    "Deliveries that failed for good (last attempt, final answer, receiver gone), by receiver.",
    ["receiver"],
)
RETRY_QUEUE = Gauge(
    "creditwatch_delivery_queue_size",
    "Deliveries waiting for their first attempt or a retry.",
)
