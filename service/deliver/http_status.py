"""Reading HTTP answers the same way for every HTTP receiver (webhook, Slack).

Usage::

    outcome = outcome_of(response.status_code, response.headers.get("retry-after"), now)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from service.deliver.receivers import Outcome

__all__ = ["MAX_RETRY_AFTER_S", "outcome_of", "retry_after_s"]

# A week: past any receiver's real back-off, and far from what a timedelta can hold.
MAX_RETRY_AFTER_S = 7 * 86_400.0
_SECONDS = re.compile(r"[0-9]+", re.ASCII)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if any.

    Only ASCII digits count as seconds (``str.isdigit`` and ``int`` also take ``²`` or
    Devanagari digits); anything else that is not an HTTP date is ignored, and every answer
    is clamped to ``MAX_RETRY_AFTER_S``: a receiver cannot make us wait, or overflow, forever.
    """
    if not value:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER_S)  # a thousand digits make inf, not an error
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


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
