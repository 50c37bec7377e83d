"""One JSON POST to a receiver's HTTP API, read the same way for every JSON receiver.

PagerDuty, Opsgenie, Teams, Discord, Telegram and Apprise all take a JSON body and answer
with a status and a short JSON reply. This is the one place they send and read it: transport
trouble and timeouts are retried; the reply is read up to ``REPLY_LIMIT`` bytes (a huge or
endless reply cannot fill memory), the timeout bounds the whole attempt, and an answer other
than 2xx keeps the start of the reply in the outcome, so a dead-lettered delivery says *why*
(PagerDuty's "invalid event" errors).
Only 429 and 5xx are retried (``Retry-After`` honoured); other 4xx mean the payload or the
credentials are wrong, and retrying cannot fix that.

The receivers themselves derive from ``JsonApiReceiver``, which makes the attempt: they say
what to post.

Usage::

    class MyReceiver(JsonApiReceiver[MySettings]):
        kind = "my"
        def requests(self, delivery): return [(self.settings.url, {"text": "..."})]
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx

from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery
from service.deliver.http_status import outcome_of
from service.deliver.links import AlertLinks
from service.deliver.receivers import ConfiguredReceiver, Outcome, ReceiverConfig
from service.deliver.templates import Renderer
from workers.contract import wire

__all__ = ["REPLY_LIMIT", "JsonApiReceiver", "Reply", "post_each", "post_json", "seconds"]

# The replies we read are a few hundred bytes; anything past this is not looked at.
REPLY_LIMIT = 64 * 1024
_DETAIL_CHARS = 300


def seconds(value: object) -> float | None:
    """A wait a reply's JSON asked for (Discord's ``retry_after``, Telegram's
    ``parameters.retry_after``), if it is a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The reply as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def outcome(self, now: datetime, *, retry_after_s: float | None = None) -> Outcome:
        """2xx delivered; 429/5xx retried; other 4xx failed, with the reply as the reason."""
        outcome = outcome_of(
            self.status, self.headers.get("retry-after"), now, client_errors_final=True
        )
        if retry_after_s is not None and outcome.result == "retry":
            outcome = Outcome.retry(outcome.detail, outcome.status_code, retry_after_s)
        if outcome.result == "delivered" or not self.body:
            return outcome
        reason = self.body[:_DETAIL_CHARS].decode("utf-8", "replace").strip()
        return Outcome(
            outcome.result,
            f"{outcome.detail}: {reason}",
            outcome.status_code,
            outcome.retry_after_s,
        )


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout_s: float,
) -> Reply | Outcome:
    """POST ``body``; the reply, or a retry Outcome if none came (the URL is never in it:
    for Telegram, Teams, Discord and Slack the URL holds the secret)."""
    content = wire.dumps(dict(body))
    try:
        # The timeout bounds the whole attempt: a reply dripped a byte at a time cannot hold
        # it past the delivery's lease (httpx's own timeout bounds each read only).
        async with (
            asyncio.timeout(timeout_s),
            http.stream(
                "POST",
                url,
                content=content,
                headers={"content-type": "application/json", **headers},
                timeout=httpx.Timeout(timeout_s),
            ) as response,
        ):
            read = bytearray()
            async for chunk in response.aiter_bytes():
                read.extend(chunk[: REPLY_LIMIT - len(read)])
                if len(read) >= REPLY_LIMIT:
                    break
            return Reply(response.status_code, response.headers, bytes(read))
    except (httpx.TimeoutException, TimeoutError):
        return Outcome.retry(f"timeout after {timeout_s:g} s")
    except httpx.HTTPError as error:
        return Outcome.retry(f"transport error: {type(error).__name__}")


async def post_each(
    http: httpx.AsyncClient,
    requests: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    read: Callable[[Reply], Outcome],
) -> Outcome:
    """POST each (url, body) in order, stopping at the first that is not delivered.

    The incident tools take one event per alert: a retry sends the earlier ones again, which
    their de-duplication (dedup key, alias) makes harmless.
    """
    outcome = Outcome.delivered()
    for url, body in requests:
        reply = await post_json(http, url, body, headers=headers, timeout_s=timeout_s)
        outcome = reply if isinstance(reply, Outcome) else read(reply)
        if outcome.result != "delivered":
            return outcome
    return outcome


class JsonApiConfig(ReceiverConfig, Protocol):
    @property
    def timeout_s(self) -> float: ...


C = TypeVar("C", bound=JsonApiConfig)


@dataclass(eq=False, repr=False)
class JsonApiReceiver(ConfiguredReceiver[C]):
    """A receiver whose attempt is JSON POSTs: a subclass says what to post (``requests``),
    with which ``headers``, and may read the reply its own way (``read``)."""

    kind = "json"

    http: httpx.AsyncClient
    renderer: Renderer
    links: AlertLinks
    clock: Clock = utc_now

    def requests(self, delivery: Delivery) -> list[tuple[str, Mapping[str, Any]]]:
        """(url, body) to POST, in order."""
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {}

    def read(self, reply: Reply) -> Outcome:
        return reply.outcome(self.clock())

    async def attempt(self, delivery: Delivery) -> Outcome:
        if not delivery.transitions:
            return Outcome.failed(f"{self.kind} takes alerts, not digests")
        return await post_each(
            self.http,
            self.requests(delivery),
            headers=self.headers(),
            timeout_s=self.settings.timeout_s,
            read=self.read,
        )
