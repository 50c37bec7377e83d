"""Signed webhooks per Standard Webhooks (``webhook-id``, ``-timestamp``, ``-signature``).

The ``webhook-id`` is derived from the delivery id, so it is the same on every retry of one
delivery and a subscriber can drop duplicates by it. Only a 2xx answer counts as delivered;
429 and 5xx (and timeouts) are retried with exponential backoff and jitter, honouring
``Retry-After``; any other answer is final.

Usage::

    async with httpx.AsyncClient() as http:
        receiver = WebhookReceiver(subscriber, http, max_attempts=5, retry_base_s=1.0)
        await receiver.send(transition, delivery_id)
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import structlog
from standardwebhooks import Webhook

from config.settings import WebhookSubscriber
from service.alerts import AlertTransition
from service.deliver.receivers import DeliveryFailed
from workers import wire

__all__ = ["WebhookReceiver", "message_id", "retry_after_s"]

log = structlog.get_logger(__name__)

# In-process waits are bounded: a subscriber asking for an hour is retried on a later delivery.
_MAX_RETRY_AFTER_S = 60.0
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def message_id(delivery_id: str) -> str:
    """The Standard Webhooks message id of one delivery (stable across its retries)."""
    return "msg_" + hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


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


class WebhookReceiver:
    """One subscriber endpoint with its secret and the alert kinds it wants."""

    def __init__(
        self,
        subscriber: WebhookSubscriber,
        http: httpx.AsyncClient,
        *,
        max_attempts: int,
        retry_base_s: float,
        timeout_s: float = 15.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._subscriber = subscriber
        self._http = http
        self._signer = Webhook(subscriber.secret.get_secret_value())
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._timeout = httpx.Timeout(timeout_s)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def name(self) -> str:
        return f"webhook:{self._subscriber.name}"

    def wants(self, transition: AlertTransition) -> bool:
        return any(fnmatch.fnmatchcase(transition.kind, kind) for kind in self._subscriber.kinds)

    async def send(self, transition: AlertTransition, delivery_id: str) -> None:
        body = wire.dumps(transition.webhook_body()).decode()
        msg_id = message_id(delivery_id)
        reason = "not attempted"
        for attempt in range(1, self._max_attempts + 1):
            wait, reason = await self._attempt(body, msg_id, attempt)
            if wait is None:
                return
            if wait < 0:
                raise DeliveryFailed(self.name, reason, attempts=attempt)
            if attempt < self._max_attempts:
                log.warning(
                    "webhook.retry",
                    receiver=self.name,
                    alert_id=transition.alert_id,
                    attempt=attempt,
                    reason=reason,
                    delay_s=round(wait, 3),
                )
                await self._sleep(wait)
        raise DeliveryFailed(self.name, reason, attempts=self._max_attempts)

    async def _attempt(self, body: str, msg_id: str, attempt: int) -> tuple[float | None, str]:
        """One POST. Returns (None, _) on success, (-1, why) if final, else (delay, why)."""
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, body),
        }
        backoff = self._retry_base_s * 2 ** (attempt - 1) * self._rng.uniform(0.5, 1.5)
        try:
            response = await self._http.post(
                self._subscriber.url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            return backoff, "timeout"
        except httpx.TransportError as error:
            return backoff, f"transport error: {type(error).__name__}"
        if response.is_success:
            return None, f"HTTP {response.status_code}"
        reason = f"HTTP {response.status_code}"
        if response.status_code not in _RETRYABLE_STATUS:
            return -1, reason
        asked = retry_after_s(response.headers.get("retry-after"), now)
        return (min(asked, _MAX_RETRY_AFTER_S) if asked is not None else backoff), reason
