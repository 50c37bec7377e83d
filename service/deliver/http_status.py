"""Reading HTTP answers the same way for every HTTP receiver (webhook, Slack).

Usage::

    outcome = outcome_of(response.status_code, response.headers.get("retry-after"), now)
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from service.deliver.receivers import Outcome

__all__ = ["outcome_of", "retry_after_s"]


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if any."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def outcome_of(
    status: int, retry_after: str | None, now: datetime, *, client_errors_final: bool
) -> Outcome:
    """Only 2xx is delivered; 410 is gone; 429 and 5xx are retried (``Retry-After`` honoured).

    Other 4xx are retried too for webhooks (the Standard Webhooks rule: the subscriber may
    fix its endpoint) but final for Slack, where they mean a bad URL or payload.
    """
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return Outcome.delivered(status)
    if status == 410:
        return Outcome.gone(reason, status)
    if status == 429 or status >= 500 or not client_errors_final:
        return Outcome.retry(reason, status, retry_after_s(retry_after, now))
    return Outcome.failed(reason, status)
