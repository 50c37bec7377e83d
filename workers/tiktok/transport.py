"""The one request path to the TikTok Business API: budget, retries, suspensions, the reply
envelope and token hygiene, apart from the endpoints (``workers.tiktok.client``).

Every attempt, retries included, first takes a grant from its developer app's ``ApiBudget``
(per second, minute and day; shared by every client of the app).
Replies are parsed with ``wire.loads`` so money stays exact (``Decimal``). Only the envelope's
``code`` decides success (``0``); ``message`` is shown in errors but never compared.

Throttling (40100, 40133, 40132, 40016, 61000, HTTP 429) is retried with exponential backoff
and full jitter; throttling that persists (``tiktok.suspend_after_s`` of nothing but throttles
on an endpoint) is a suspension: the endpoint pauses for ``tiktok.suspension_s`` and the call
waits, then carries on with its retries unspent (see ``workers.suspensions``); a task inside
``pause_listener(listener)`` is told when its call waits. System errors (50000, 50002, 60001),
HTTP 5xx, timeouts and transport errors are retried with backoff; when their retries run out
the transport raises ``TransientError`` (``RateLimited`` for throttles when pausing is off).
Auth (40105, 40104, 40102, 40106, 40107), permission (40001), bad request (40002) and other
codes are not retried (``workers.tiktok.errors``).
The access token is sent in the ``Access-Token`` header only and never appears in errors or logs.

Every reply's HTTP ``Date`` header (RFC 7231) is the API's own time: ``reply_time()`` gives the
one of the last reply in the calling task (the local clock if it had none). Pollers stamp
snapshots with it, so that detectors reason in the API's time (which, against the sandbox,
is simulated time).

Usage::

    transport = ApiTransport(settings.tiktok, budget=budget)
    data = await transport.get("/bc/balance/get/", {"bc_id": "7001"})   # the envelope's data
    await transport.aclose()

Tests pass ``transport=httpx.MockTransport(handler)``, a no-op ``sleep`` and a fake-clock budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict, Unpack

import httpx
import structlog

from config.settings import TikTokSettings
from workers.api_budget import ApiBudget, on_the_wire
from workers.contract import wire
from workers.metrics import API_CALLS, API_RETRIES, RATELIMIT_WAIT_SECONDS
from workers.suspensions import Pause
from workers.tiktok.errors import (
    SERVER_ERROR_CODES,
    THROTTLE_CODES,
    ApiError,
    MalformedReply,
    RateLimited,
    TransientError,
    error_for,
    json_kind,
)

__all__ = ["ApiTransport", "pause_listener", "reply_time"]

log = structlog.get_logger(__name__)

# How much of a reply body or API message goes into an error text.
_SNIPPET = 200

# The Date of the last reply received by the current task (None: it had none, or no reply).
_reply_date: ContextVar[datetime | None] = ContextVar("tiktok_reply_date", default=None)


# Told when a call of the current task waits out an endpoint's pause (see pause_listener).
_pause_listener: ContextVar[Callable[[Pause], Awaitable[None]] | None] = ContextVar(
    "tiktok_pause_listener", default=None
)


@contextmanager
def pause_listener(listener: Callable[[Pause], Awaitable[None]]) -> Iterator[None]:
    """Within this block, calls of the current task await ``listener(pause)`` before they wait
    out a suspended endpoint (the poller publishes ``rate_limited`` with it)."""
    token = _pause_listener.set(listener)
    try:
        yield
    finally:
        _pause_listener.reset(token)


def reply_time() -> datetime:
    """The API's time at the last reply this task received; the local clock if unknown."""
    return _reply_date.get() or datetime.now(UTC)


def _header_date(response: httpx.Response) -> datetime | None:
    text = response.headers.get("date")
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class _Retryable:
    """One failed attempt that may be retried."""

    reason: str  # API_RETRIES label: throttled, api_error, http_5xx, timeout, transport
    detail: str
    code: int | None = None
    request_id: str | None = None

    @property
    def throttled(self) -> bool:
        return self.reason == "throttled"

    def log_fields(self, endpoint: str) -> dict[str, object]:
        """What the retry and give-up log lines say of this failure."""
        return {
            "endpoint": endpoint,
            "code": self.code,
            "reason": self.reason,
            "request_id": self.request_id,
        }


def _encode_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as text: lists and objects as compact JSON, ``None`` left out."""
    query: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        elif isinstance(value, str):
            query[key] = value
        elif isinstance(value, int | float | Decimal):
            query[key] = str(value)
        elif isinstance(value, Mapping):
            query[key] = wire.dumps(dict(value)).decode()
        elif isinstance(value, list | tuple):
            query[key] = wire.dumps(list(value)).decode()
        else:
            raise TypeError(f"query parameter {key!r}: cannot send {type(value).__name__}")
    return query


_HEADERS_SENT = ("http11.send_request_headers.started", "http2.send_request_headers.started")


async def _stamp_on_the_wire(event: str, info: dict[str, Any]) -> None:
    """httpcore's trace hook: the grant's stamp is when the request reaches the wire."""
    if event in _HEADERS_SENT:
        on_the_wire()


class TransportOptions(TypedDict, total=False):
    """What a caller may give an ``ApiTransport`` (or a ``TikTokClient``) besides settings."""

    budget: ApiBudget | None  # the developer app's, shared; else one of its own
    transport: httpx.AsyncBaseTransport  # where requests go (tests: a mock or an ASGI app)
    sleep: Callable[[float], Awaitable[None]]  # the waits of backoff and pauses
    rng: random.Random  # the jitter's


class ApiTransport:
    """GETs of the TikTok Business API with one app's budget, retries and token; ``get`` is
    the only way in. ``aclose()`` when done."""

    def __init__(self, settings: TikTokSettings, **options: Unpack[TransportOptions]) -> None:
        self._settings = settings
        self._token = settings.access_token.get_secret_value()
        budget = options.get("budget")
        self._budget = budget if budget is not None else ApiBudget.from_settings(settings)
        self._sleep = options.get("sleep", asyncio.sleep)
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = options.get("rng") or random.Random()  # noqa: S311
        self._http = httpx.AsyncClient(
            transport=options.get("transport"),
            timeout=httpx.Timeout(settings.timeout_s),
            headers={
                "Access-Token": self._token,
                "Accept": "application/json",
                "User-Agent": "creditwatch",
            },
            follow_redirects=False,
        )

    @property
    def budget(self) -> ApiBudget:
        return self._budget

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"ApiTransport(base_url={self._settings.base_url!r}, budget={self._budget!r})"

    # -- the one request path ------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET ``base_url + path``; return the envelope's ``data`` object when ``code == 0``.

        Raises a ``TikTokError`` subclass otherwise (see the module docstring).
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        url = self._settings.base_url + path
        query = _encode_params(params)
        _reply_date.set(None)
        suspensions = self._budget.suspensions
        max_attempts = self._settings.max_retries + 1
        attempt = 0
        throttles = 0  # in a row, while pausing is on: they spend no retry
        while True:
            await self._announce_pause(suspensions.paused(path))
            waited = await self._budget.acquire(path)
            if waited > 0:
                RATELIMIT_WAIT_SECONDS.inc(waited)
            try:
                outcome = await self._attempt(path, url, query)
            except BaseException:
                suspensions.settle(path)
                raise
            if not isinstance(outcome, _Retryable):
                suspensions.succeeded(path)
                return outcome
            if outcome.throttled and suspensions.enabled:
                pause = suspensions.throttled(path, outcome.code)
                if pause is not None:
                    # A suspension: wait it out (in acquire); the retries stay unspent.
                    throttles = 0
                    continue
                throttles += 1
                await self._back_off(path, outcome, throttles, None)
                continue
            suspensions.settle(path)
            attempt += 1
            if attempt >= max_attempts:
                break
            await self._back_off(path, outcome, attempt, max_attempts)
        log.warning("api.gave_up", attempts=attempt, **outcome.log_fields(path))
        error = RateLimited if outcome.throttled else TransientError
        raise error(
            f"gave up after {attempt} attempts: {outcome.detail}",
            endpoint=path,
            code=outcome.code,
            request_id=outcome.request_id,
        )

    async def _back_off(
        self, path: str, outcome: _Retryable, attempt: int, max_attempts: int | None
    ) -> None:
        """Exponential backoff with full jitter before retry number ``attempt``."""
        delay = (
            min(
                self._settings.backoff_max_s,
                self._settings.backoff_base_s * 2 ** min(attempt - 1, 30),
            )
            * self._rng.random()
        )
        API_RETRIES.labels(endpoint=path, reason=outcome.reason).inc()
        log.warning(
            "api.retry",
            attempt=attempt,
            max_attempts=max_attempts,
            delay=round(delay, 3),
            **outcome.log_fields(path),
        )
        await self._sleep(delay)

    @staticmethod
    async def _announce_pause(pause: Pause | None) -> None:
        listener = _pause_listener.get()
        if pause is not None and listener is not None:
            await listener(pause)

    async def _attempt(
        self, endpoint: str, url: str, query: Mapping[str, str]
    ) -> dict[str, Any] | _Retryable:
        """One HTTP attempt: the data object, a retryable failure, or a raised TikTokError."""
        try:
            response = await self._http.get(
                url, params=query, extensions={"trace": _stamp_on_the_wire}
            )
        except httpx.TimeoutException as exc:
            API_CALLS.labels(endpoint=endpoint, code="timeout").inc()
            return _Retryable("timeout", f"timed out ({type(exc).__name__})")
        except httpx.RequestError as exc:  # transport, protocol and content-decoding errors
            API_CALLS.labels(endpoint=endpoint, code="transport").inc()
            text = _truncate(self._redact(str(exc)))
            return _Retryable("transport", f"transport error ({type(exc).__name__}: {text})")

        _reply_date.set(_header_date(response))
        status = response.status_code
        if status >= 500 or status == 429:
            API_CALLS.labels(endpoint=endpoint, code=f"http_{status}").inc()
            reason = "throttled" if status == 429 else "http_5xx"
            return _Retryable(reason, f"HTTP {status}", code=None)

        try:
            code, request_id, message, data = self._envelope(endpoint, response)
        except MalformedReply:
            if not response.is_success:
                API_CALLS.labels(endpoint=endpoint, code=f"http_{status}").inc()
                raise ApiError(f"unexpected HTTP {status}", endpoint=endpoint) from None
            API_CALLS.labels(endpoint=endpoint, code="malformed").inc()
            raise

        if code == 0:
            if not response.is_success:
                # An OK envelope on an error status is not to be trusted.
                API_CALLS.labels(endpoint=endpoint, code=f"http_{status}").inc()
                raise ApiError(
                    f"unexpected HTTP {status} with code 0",
                    endpoint=endpoint,
                    request_id=request_id,
                )
            if not isinstance(data, dict):
                what = "missing or null" if data is None else json_kind(data)
                API_CALLS.labels(endpoint=endpoint, code="malformed").inc()
                raise MalformedReply(
                    f"'data' is {what}, not an object",
                    endpoint=endpoint,
                    code=code,
                    request_id=request_id,
                )
            API_CALLS.labels(endpoint=endpoint, code="0").inc()
            return data

        API_CALLS.labels(endpoint=endpoint, code=str(code)).inc()
        return _api_failure(endpoint, code, request_id, message)

    def _envelope(
        self, endpoint: str, response: httpx.Response
    ) -> tuple[int, str | None, str, Any]:
        """Split a reply into (code, request_id, message text, data); MalformedReply if not."""
        body = response.content
        try:
            envelope = wire.loads(body)
        except (ValueError, RecursionError):
            raise MalformedReply(
                f"reply is not JSON: {self._snippet(body)}", endpoint=endpoint
            ) from None
        if not isinstance(envelope, dict):
            raise MalformedReply(
                f"reply is {json_kind(envelope)}, not a JSON object: {self._snippet(body)}",
                endpoint=endpoint,
            )
        raw_id = envelope.get("request_id")
        request_id = self._redact(raw_id)[:_SNIPPET] if isinstance(raw_id, str) else None
        code = envelope.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            what = "lacks 'code'" if "code" not in envelope else f"has 'code' {json_kind(code)}"
            raise MalformedReply(
                f"reply {what}: {self._snippet(body)}", endpoint=endpoint, request_id=request_id
            )
        message = envelope.get("message")
        message_text = self._redact(message if isinstance(message, str) else repr(message))
        return code, request_id, _truncate(message_text), envelope.get("data")

    # -- token hygiene -------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _snippet(self, body: bytes) -> str:
        # Redact before truncating, so that a token cut at the edge cannot leak a prefix.
        head = body[: _SNIPPET + len(self._token) + 1].decode("utf-8", "replace")
        return repr(_truncate(self._redact(head)))


def _api_failure(endpoint: str, code: int, request_id: str | None, message: str) -> _Retryable:
    """A non-zero code: retryable for throttling and system errors, else raised at once."""
    detail = f"API error: {message}"
    if code in THROTTLE_CODES:
        return _Retryable("throttled", detail, code=code, request_id=request_id)
    if code in SERVER_ERROR_CODES:
        return _Retryable("api_error", detail, code=code, request_id=request_id)
    raise error_for(code)(detail, endpoint=endpoint, code=code, request_id=request_id)


def _truncate(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."
