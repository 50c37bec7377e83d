"""Prometheus metrics of the service role (detectors, notifiers, dead letters, and the
stream gauges ``/metrics`` reads from Redis), all declared here.

The worker role's metrics live in ``workers/metrics.py``; both register in the default
registry, so one ``/metrics`` endpoint serves whatever runs in the process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "ALERTS",
    "CONSUMER_LAG",
    "DATA_AGE",
    "DEADLETTERED",
    "DELIVERIES",
    "DELIVERIES_DEADLETTERED",
    "HTTP_REFUSED",
    "PENDING",
    "RETRY_QUEUE",
    "RULE_ERRORS",
    "SNAPSHOTS_CONSUMED",
    "STATE_CONFLICTS",
    "STATE_CORRUPT",
    "STREAM_LENGTH",
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
RULE_ERRORS = Counter(
    "creditwatch_rule_errors_total",
    "Detection rule runs that raised (the rule was skipped for that snapshot).",
    ["rule"],
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
HTTP_REFUSED = Counter(
    "creditwatch_http_refused_total",
    "HTTP requests answered 503, by reason (saturated: too many at once; redis: out of reach).",
    ["reason"],
)

# Read from Redis at scrape time (service/http/stream_stats.py).
STREAM_LENGTH = Gauge(
    "creditwatch_stream_length", "Entries in each creditwatch stream.", ["stream"]
)
CONSUMER_LAG = Gauge(
    "creditwatch_consumer_group_lag",
    "Entries of a stream not yet delivered to a consumer group.",
    ["stream", "group"],
)
PENDING = Gauge(
    "creditwatch_consumer_group_pending",
    "Entries delivered to a consumer group but not acknowledged yet.",
    ["stream", "group"],
)
DATA_AGE = Gauge(
    "creditwatch_data_age_seconds",
    "Seconds since the last successful poll, per source and business center.",
    ["source", "bc_id"],
)
