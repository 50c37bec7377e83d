"""Async client of the TikTok Business API (see docs in ``/work/shared/tiktok-api.md``).

Every attempt, retries included, first takes a grant from the process-wide ``QpsBudget``.
Replies are parsed with ``wire.loads`` so money stays exact (``Decimal``). Only the envelope's
``code`` decides success (``0``); ``message`` is shown in errors but never compared.

Throttling (40100, 40133, 40132, 40016), system errors (50000, 50002, 60001), HTTP 5xx,
timeouts and transport errors are retried with exponential backoff and full jitter; when the
retries run out the client raises ``RateLimited`` (throttling) or ``TransientError``.
Auth (40105, 40104), permission (40001), bad request (40002) and other codes are not retried.
The access token is sent in the ``Access-Token`` header only and never appears in errors or logs.

Usage::

    budget = QpsBudget(settings.tiktok.qps)          # one per process, shared by clients
    async with TikTokClient(settings.tiktok, budget=budget) as api:
        try:
            rows = await api.advertiser_balances("7001")     # raw dict rows, all pages
            bc = await api.bc_balance("7001")
        except AuthError:
            ...                                               # token revoked: alert ops
        except TransientError:                                # RateLimited included
            ...                                               # try again next cycle

Every reply's HTTP ``Date`` header (RFC 7231) is the API's own time: ``reply_time()`` gives the
one of the last reply in the calling task (the local clock if it had none). Pollers stamp
snapshots with it, so that detectors reason in the API's time (which, against the sandbox,
is simulated time).

Tests pass ``transport=httpx.MockTransport(handler)``, a no-op ``sleep`` and a fake-clock budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from config.settings import TikTokSettings
from workers import wire
from workers.metrics import ACCOUNTS_REJECTED, API_CALLS, API_RETRIES, RATELIMIT_WAIT_SECONDS
from workers.ratelimit import QpsBudget

__all__ = [
    "ADVERTISER_BALANCE_PATH",
    "ADVERTISER_INFO_PATH",
    "BC_BALANCE_PATH",
    "BC_COST_PATH",
    "BC_TRANSACTION_PATH",
    "MAX_PAGES",
    "REPORT_PATH",
    "ApiError",
    "AuthError",
    "BadRequest",
    "MalformedReply",
    "PermissionDenied",
    "RateLimited",
    "TikTokClient",
    "TikTokError",
    "TransientError",
    "reply_time",
]

log = structlog.get_logger(__name__)

ADVERTISER_BALANCE_PATH = "/advertiser/balance/get/"
BC_BALANCE_PATH = "/bc/balance/get/"
ADVERTISER_INFO_PATH = "/advertiser/info/"
BC_COST_PATH = "/bc/account/cost/get/"
BC_TRANSACTION_PATH = "/bc/account/transaction/get/"
REPORT_PATH = "/report/integrated/get/"
REPORT_PAGE_SIZE = 1000
TRANSACTION_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Stop paging after this many pages even if page_info says more (50 000 accounts at 50/page).
MAX_PAGES = 1000
# /advertiser/info/ takes at most 100 advertiser_ids per call.
ADVERTISER_INFO_CHUNK = 100

THROTTLE_CODES = frozenset({40100, 40133, 40132, 40016})
SERVER_ERROR_CODES = frozenset({50000, 50002, 60001})
AUTH_CODES = frozenset({40105, 40104})
PERMISSION_CODE = 40001
BAD_REQUEST_CODE = 40002

# How much of a reply body or API message goes into an error text.
_SNIPPET = 200

# The Date of the last reply received by the current task (None: it had none, or no reply).
_reply_date: ContextVar[datetime | None] = ContextVar("tiktok_reply_date", default=None)


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


class TikTokError(Exception):
    """Any failure of a TikTok API call; ``code`` is the API code when the reply had one."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        text = f"{endpoint}: {message}"
        if code is not None:
            text += f" [code {code}]"
        if request_id is not None:
            text += f" [request_id {request_id}]"
        super().__init__(text)
        self.code = code
        self.endpoint = endpoint
        self.request_id = request_id


class AuthError(TikTokError):
    """40105 / 40104: the access token is wrong, revoked or expired. Not retried; alert ops."""


class PermissionDenied(TikTokError):
    """40001: the token has no permission for this resource. Not retried."""


class BadRequest(TikTokError):
    """40002: a bad parameter, or a resource that is not accessible. Not retried."""


class ApiError(TikTokError):
    """Any other non-zero API code (or an unexpected HTTP status). Not retried."""


class MalformedReply(TikTokError):
    """The reply is not a JSON object envelope with an integer ``code`` and object ``data``."""


class TransientError(TikTokError):
    """A retryable failure (5xx, timeout, transport, system code) outlived every retry."""


class RateLimited(TransientError):
    """Throttling codes (40100, 40133, 40132, 40016) or HTTP 429 outlived every retry."""


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


class TikTokClient:
    """Async TikTok Business API client; use as ``async with`` or call ``aclose()``."""

    def __init__(
        self,
        settings: TikTokSettings,
        *,
        budget: QpsBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._token = settings.access_token.get_secret_value()
        self._budget = budget if budget is not None else QpsBudget(settings.qps)
        self._sleep = sleep
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s),
            headers={
                "Access-Token": self._token,
                "Accept": "application/json",
                "User-Agent": "creditwatch",
            },
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: TikTokSettings, *, budget: QpsBudget | None = None) -> Self:
        """A client on the real network; pass the process's shared ``budget`` if there is one."""
        return cls(settings, budget=budget)

    @property
    def budget(self) -> QpsBudget:
        return self._budget

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"TikTokClient(base_url={self._settings.base_url!r}, budget={self._budget!r})"

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
        max_attempts = self._settings.max_retries + 1
        attempt = 0
        while True:
            waited = await self._budget.acquire()
            if waited > 0:
                RATELIMIT_WAIT_SECONDS.inc(waited)
            outcome = await self._attempt(path, url, query)
            if not isinstance(outcome, _Retryable):
                return outcome
            attempt += 1
            if attempt >= max_attempts:
                break
            delay = (
                min(
                    self._settings.backoff_max_s,
                    self._settings.backoff_base_s * 2 ** (attempt - 1),
                )
                * self._rng.random()
            )
            API_RETRIES.labels(endpoint=path, reason=outcome.reason).inc()
            log.warning(
                "api.retry",
                endpoint=path,
                code=outcome.code,
                reason=outcome.reason,
                attempt=attempt,
                max_attempts=max_attempts,
                delay=round(delay, 3),
                request_id=outcome.request_id,
            )
            await self._sleep(delay)
        log.warning(
            "api.gave_up",
            endpoint=path,
            code=outcome.code,
            reason=outcome.reason,
            attempts=attempt,
            request_id=outcome.request_id,
        )
        error = RateLimited if outcome.throttled else TransientError
        raise error(
            f"gave up after {attempt} attempts: {outcome.detail}",
            endpoint=path,
            code=outcome.code,
            request_id=outcome.request_id,
        )

    async def _attempt(
        self, endpoint: str, url: str, query: Mapping[str, str]
    ) -> dict[str, Any] | _Retryable:
        """One HTTP attempt: the data object, a retryable failure, or a raised TikTokError."""
        try:
            response = await self._http.get(url, params=query)
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
                what = "missing or null" if data is None else _kind(data)
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
                f"reply is {_kind(envelope)}, not a JSON object: {self._snippet(body)}",
                endpoint=endpoint,
            )
        raw_id = envelope.get("request_id")
        request_id = self._redact(raw_id)[:_SNIPPET] if isinstance(raw_id, str) else None
        code = envelope.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            what = "lacks 'code'" if "code" not in envelope else f"has 'code' {_kind(code)}"
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

    # -- endpoints -----------------------------------------------------------------------

    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]:
        """Every ad account of a Business Center with its balances: the raw rows, all pages.

        Rows are not validated here (the poller does it per row, so that one bad account
        does not hide the others); rows that are not even objects are counted and dropped.
        """
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            data = await self.get(
                ADVERTISER_BALANCE_PATH,
                {
                    "bc_id": bc_id,
                    "fields": ["balance_info", "budget_remaining"],
                    "page": page,
                    "page_size": self._settings.page_size,
                },
            )
            items = _list_field(data, "advertiser_account_list", ADVERTISER_BALANCE_PATH)
            total_page = _total_page(data, ADVERTISER_BALANCE_PATH)
            rows.extend(
                self._dict_rows(
                    items,
                    source="advertiser_balance",
                    endpoint=ADVERTISER_BALANCE_PATH,
                    bc_id=bc_id,
                    page=page,
                )
            )
            if page >= total_page or not items:
                return rows
            if page >= MAX_PAGES:
                log.warning(
                    "api.paging_truncated",
                    endpoint=ADVERTISER_BALANCE_PATH,
                    bc_id=bc_id,
                    pages_read=page,
                    total_page=total_page,
                )
                return rows
            page += 1

    async def bc_balance(self, bc_id: str) -> dict[str, Any]:
        """The Business Center's own balance (``data`` of ``/bc/balance/get/``)."""
        return await self.get(BC_BALANCE_PATH, {"bc_id": bc_id})

    async def advertiser_info(self, advertiser_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``/advertiser/info/`` rows for the given ids (duplicates asked once), 100 per call."""
        if isinstance(advertiser_ids, str):
            raise TypeError("advertiser_ids must be a sequence of ids, not one string")
        unique = list(dict.fromkeys(advertiser_ids))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(unique), ADVERTISER_INFO_CHUNK):
            chunk = unique[start : start + ADVERTISER_INFO_CHUNK]
            data = await self.get(ADVERTISER_INFO_PATH, {"advertiser_ids": chunk})
            items = _list_field(data, "list", ADVERTISER_INFO_PATH)
            rows.extend(
                self._dict_rows(items, source="advertiser_info", endpoint=ADVERTISER_INFO_PATH)
            )
        return rows

    async def _all_pages(
        self, path: str, params: Mapping[str, Any], list_name: str, page_size: int, **context: Any
    ) -> list[dict[str, Any]]:
        """Every row of a paged list endpoint (rows that are not objects are counted, dropped)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            data = await self.get(path, {**params, "page": page, "page_size": page_size})
            items = _list_field(data, list_name, path)
            total_page = _total_page(data, path)
            rows.extend(
                self._dict_rows(items, source=list_name, endpoint=path, page=page, **context)
            )
            if page >= total_page or not items:
                return rows
            if page >= MAX_PAGES:
                log.warning("api.paging_truncated", endpoint=path, pages_read=page, **context)
                return rows
            page += 1

    async def account_costs(self, bc_id: str, day: date) -> list[dict[str, Any]]:
        """``cost_list`` rows of ``/bc/account/cost/get/`` for one UTC day: spend per account."""
        filtering = {"start_date": day.isoformat(), "end_date": day.isoformat()}
        return await self._all_pages(
            BC_COST_PATH,
            {"bc_id": bc_id, "filtering": filtering},
            "cost_list",
            self._settings.page_size,
            bc_id=bc_id,
        )

    async def credit_transactions(
        self, bc_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """``PROMOTION_ISSUED`` / ``PROMOTION_EXPIRED`` rows of ``/bc/account/transaction/get/``.

        ``start`` and ``end`` are sent as UTC ``YYYY-MM-DD HH:MM:SS``.
        """
        filtering = {
            "transaction_types": ["PROMOTION_ISSUED", "PROMOTION_EXPIRED"],
            "start_time": start.astimezone(UTC).strftime(TRANSACTION_TIME_FORMAT),
            "end_time": end.astimezone(UTC).strftime(TRANSACTION_TIME_FORMAT),
        }
        return await self._all_pages(
            BC_TRANSACTION_PATH,
            {"bc_id": bc_id, "transaction_level": "ADVERTISER", "filtering": filtering},
            "transaction_list",
            self._settings.page_size,
            bc_id=bc_id,
        )

    async def report_spend(
        self, advertiser_id: str, start: date, end: date, *, by_campaign: bool = False
    ) -> list[dict[str, Any]]:
        """Daily ``spend`` / ``cash_spend`` / ``voucher_spend`` from ``/report/integrated/get/``.

        Dates are the account's own; metric values come back as strings.
        """
        level, key = (
            ("AUCTION_CAMPAIGN", "campaign_id")
            if by_campaign
            else (
                "AUCTION_ADVERTISER",
                "advertiser_id",
            )
        )
        return await self._all_pages(
            REPORT_PATH,
            {
                "advertiser_id": advertiser_id,
                "report_type": "BASIC",
                "service_type": "AUCTION",
                "data_level": level,
                "dimensions": [key, "stat_time_day"],
                "metrics": ["spend", "cash_spend", "voucher_spend"],
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
            },
            "list",
            REPORT_PAGE_SIZE,
            advertiser_id=advertiser_id,
        )

    @staticmethod
    def _dict_rows(
        items: list[Any], *, source: str, endpoint: str, **context: Any
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                rows.append(item)
                continue
            ACCOUNTS_REJECTED.labels(source=source).inc()
            log.warning(
                "api.row_rejected",
                endpoint=endpoint,
                source=source,
                index=index,
                row_type=type(item).__name__,
                **context,
            )
        return rows


def _api_failure(endpoint: str, code: int, request_id: str | None, message: str) -> _Retryable:
    """A non-zero code: retryable for throttling and system errors, else raised at once."""
    detail = f"API error: {message}"
    if code in THROTTLE_CODES:
        return _Retryable("throttled", detail, code=code, request_id=request_id)
    if code in SERVER_ERROR_CODES:
        return _Retryable("api_error", detail, code=code, request_id=request_id)
    error: type[TikTokError] = ApiError
    if code in AUTH_CODES:
        error = AuthError
    elif code == PERMISSION_CODE:
        error = PermissionDenied
    elif code == BAD_REQUEST_CODE:
        error = BadRequest
    raise error(detail, endpoint=endpoint, code=code, request_id=request_id)


def _kind(value: Any) -> str:
    """A JSON value's kind for error texts (never the value itself)."""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, int | float | Decimal):
        return "a number"
    return type(value).__name__


def _truncate(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _list_field(data: dict[str, Any], name: str, endpoint: str) -> list[Any]:
    items = data.get(name)
    if not isinstance(items, list):
        what = "missing" if name not in data else _kind(items)
        raise MalformedReply(f"'data.{name}' is {what}, not an array", endpoint=endpoint)
    return items


def _total_page(data: dict[str, Any], endpoint: str) -> int:
    page_info = data.get("page_info")
    if not isinstance(page_info, dict):
        what = "missing" if "page_info" not in data else _kind(page_info)
        raise MalformedReply(f"'data.page_info' is {what}, not an object", endpoint=endpoint)
    total_page = page_info.get("total_page")
    if not isinstance(total_page, int) or isinstance(total_page, bool) or total_page < 0:
        raise MalformedReply(
            "'data.page_info.total_page' is not a non-negative integer", endpoint=endpoint
        )
    return total_page
