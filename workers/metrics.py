"""Prometheus metrics of the worker role (API client and pollers), all prefixed ``creditwatch_``.

They register in prometheus_client's default registry when this module is imported; the
service exposes that registry. Label values are bounded: endpoints are the client's fixed
paths, sources and kinds are the pollers' own names.

Usage::

    from workers import metrics

    metrics.API_CALLS.labels(endpoint="/bc/balance/get/", code="0").inc()
    metrics.POLLS.labels(source="advertiser_balance", outcome="ok").inc()
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "ACCOUNTS_REJECTED",
    "API_CALLS",
    "API_RETRIES",
    "API_SUSPENDED",
    "API_SUSPENSIONS",
    "POLLS",
    "RATELIMIT_WAIT_SECONDS",
    "SNAPSHOTS_PUBLISHED",
]

API_CALLS = Counter(
    "creditwatch_api_calls_total",
    "TikTok API attempts (retries included) by endpoint and outcome: the API code as text "
    "('0' is success), or http_<status>, 'timeout', 'transport', 'malformed'.",
    ["endpoint", "code"],
)

API_RETRIES = Counter(
    "creditwatch_api_retries_total",
    "TikTok API attempts that were retried, by endpoint and reason "
    "(throttled, api_error, http_5xx, timeout, transport).",
    ["endpoint", "reason"],
)

API_SUSPENDED = Gauge(
    "creditwatch_api_suspended",
    "Developer apps whose calls to this endpoint are paused by a persistent throttle "
    "(TikTok's 5-minute suspension after going over the minute limit).",
    ["endpoint"],
)

API_SUSPENSIONS = Counter(
    "creditwatch_api_suspensions_total",
    "Suspensions of an endpoint (a persistent 40100) that paused its calls.",
    ["endpoint"],
)

RATELIMIT_WAIT_SECONDS = Counter(
    "creditwatch_ratelimit_wait_seconds_total",
    "Seconds API calls waited for the request budget (QPS, QPM, QPD), summed over callers.",
)

POLLS = Counter(
    "creditwatch_polls_total",
    "Poll cycles by source (e.g. advertiser_balance) and outcome (e.g. ok, error).",
    ["source", "outcome"],
)

SNAPSHOTS_PUBLISHED = Counter(
    "creditwatch_snapshots_published_total",
    "Snapshots published to the snapshot stream, by snapshot kind.",
    ["kind"],
)

ACCOUNTS_REJECTED = Counter(
    "creditwatch_accounts_rejected_total",
    "Malformed account rows from the API that were set aside, by source.",
    ["source"],
)
