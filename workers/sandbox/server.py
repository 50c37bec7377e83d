"""The sandbox HTTP server: TikTok Business API endpoints served from a simulation.

A client pointed at ``http://HOST:PORT/open_api/v1.3`` sees the contract of
``/work/shared/tiktok-api.md``: the ``{code, message, request_id, data}`` envelope (HTTP 200 even
for API errors), the ``Access-Token`` header (else 40105), a per-token QPS limit over any sliding
1-second window (else 40100), 40002 for bad parameters, 40001 for unknown business centers or
advertisers, money as JSON numbers with two decimals. Injected faults (HTTP 500, code 50000,
latency) come from a seeded RNG so runs repeat.

Every API reply carries an HTTP ``Date`` header with the *simulated* time (uvicorn's own is
off), so a client that stamps what it sees with the API's time lives in simulated time too.

Served: ``/advertiser/balance/get/``, ``/bc/balance/get/``, ``/advertiser/info/``,
``/bc/account/cost/get/``, ``/bc/account/transaction/get/``, ``/report/integrated/get/``
(``AUCTION_ADVERTISER`` or ``AUCTION_CAMPAIGN`` by ``stat_time_day``, metric values as
strings, page_size up to 1000; the sandbox runs one campaign per account). Admin routes
under ``/_sandbox/`` (not part of TikTok's API): ``GET state``, ``GET stats``,
``POST clock/advance {"seconds"}``, ``POST clock/speed {"speed"}``,
``POST events {advertiser_id, action, ...}``, ``POST faults``.

Usage::

    async with SandboxServer(load_scenario(path), port=0) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url) as http:
            await http.get("/bc/balance/get/", params={"bc_id": "7000000000001"},
                           headers={"Access-Token": "sandbox-token"})

    app = Sandbox(scenario).app      # in-process, for httpx.ASGITransport
    run_sandbox("workers/scenarios/demo.yaml", port=8090)     # blocking, for the CLI
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from workers import wire
from workers.http_server import AsgiServer

from .clock import SimClock
from .scenario import ACCOUNT_STATUSES, EventAction, Faults, Scenario, load_scenario
from .simulation import (
    Account,
    BalanceView,
    BusinessCenter,
    DaySpend,
    Simulation,
    Transaction,
    UnknownAccountError,
    money,
)

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_PORT",
    "Sandbox",
    "SandboxServer",
    "SandboxStats",
    "run_sandbox",
    "serve",
]

API_PREFIX = "/open_api/v1.3"
ADMIN_PREFIX = "/_sandbox"
DEFAULT_PORT = 8090

_OK, _NO_PERMISSION, _BAD_PARAMETER = 0, 40001, 40002
_RATE_LIMITED, _BAD_TOKEN, _SYSTEM_ERROR = 40100, 40105, 50000
_MAX_PAGE_SIZE = 50
_MAX_REPORT_PAGE_SIZE = 1000
_MAX_REPORT_DAYS = 30
_REPORT_METRICS = {"spend", "cash_spend", "voucher_spend", "impressions", "clicks"}
_MAX_IDS = 100
_MAX_SPAN = timedelta(days=365)
_DEFAULT_SPAN_DAYS = 7

# The flat amounts every advertiser_account_list row carries, besides balance_info.
_FLAT_BALANCE_FIELDS = (
    "account_balance",
    "valid_account_balance",
    "frozen_balance",
    "tax",
    "cash_balance",
    "valid_cash_balance",
    "grant_balance",
    "valid_grant_balance",
)
_TRANSACTION_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class _ApiError(Exception):
    """An API-level failure, answered as HTTP 200 with ``code != 0``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- query parameters -------------------------------------------------------------------------


def _required(params: QueryParams, name: str) -> str:
    value = params.get(name)
    if not value:
        raise _ApiError(_BAD_PARAMETER, f"{name}: required")
    return value


def _json_param(params: QueryParams, name: str, kind: type[_T]) -> _T | None:
    """A JSON-text parameter (the API's way to pass arrays and objects in a query string)."""
    text = params.get(name)
    if text is None:
        return None
    try:
        value = wire.loads(text)
    except ValueError:
        raise _ApiError(_BAD_PARAMETER, f"{name}: not valid JSON") from None
    if not isinstance(value, kind):
        raise _ApiError(_BAD_PARAMETER, f"{name}: must be a JSON {kind.__name__}")
    return value


def _string_list(value: object, name: str, limit: int = _MAX_IDS) -> list[str]:
    if not isinstance(value, list) or len(value) > limit:
        raise _ApiError(_BAD_PARAMETER, f"{name}: must be an array of at most {limit} strings")
    if not all(isinstance(item, str | int) and not isinstance(item, bool) for item in value):
        raise _ApiError(_BAD_PARAMETER, f"{name}: must contain strings")
    return [str(item) for item in value]


def _int_param(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _ApiError(_BAD_PARAMETER, f"{name}: must be an integer") from None
    if not low <= value <= high:
        raise _ApiError(_BAD_PARAMETER, f"{name}: must be between {low} and {high}")
    return value


def _paginate(
    items: list[_T], params: QueryParams, max_page_size: int = _MAX_PAGE_SIZE
) -> tuple[list[_T], dict[str, int]]:
    page = _int_param(params, "page", 1, 1, 1_000_000)
    page_size = _int_param(params, "page_size", 10, 1, max_page_size)
    total = len(items)
    info = {
        "page": page,
        "page_size": page_size,
        "total_number": total,
        "total_page": -(-total // page_size),
    }
    return items[(page - 1) * page_size : page * page_size], info


def _filtering(params: QueryParams) -> dict[str, Any]:
    return _json_param(params, "filtering", dict) or {}


def _optional_str(filtering: dict[str, Any], name: str) -> str | None:
    value = filtering.get(name)
    if value is not None and not isinstance(value, str):
        raise _ApiError(_BAD_PARAMETER, f"filtering.{name}: must be a string")
    return value or None


def _center(sim: Simulation, params: QueryParams) -> BusinessCenter:
    bc_id = _required(params, "bc_id")
    try:
        return sim.business_center(bc_id)
    except UnknownAccountError:
        raise _ApiError(
            _NO_PERMISSION, f"No permission to operate business center {bc_id}"
        ) from None


def _listed(sim: Simulation, center: BusinessCenter) -> list[Account]:
    """The center's accounts that its listings show (hidden ones are left out)."""
    return [a for a in map(sim.account, center.advertiser_ids) if not a.hidden]


def _keyword_match(account: Account, keyword: str | None) -> bool:
    if keyword is None:
        return True
    needle = keyword.casefold()
    return needle in account.name.casefold() or needle in account.advertiser_id


# --- endpoints --------------------------------------------------------------------------------

_Handler = Callable[[Simulation, QueryParams], dict[str, Any]]


def _advertiser_balance_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/advertiser/balance/get/``: a business center's ad accounts with their balances."""
    center = _center(sim, params)
    wanted = set(_string_list(_json_param(params, "fields", list) or [], "fields"))
    filtering = _filtering(params)
    keyword = _optional_str(filtering, "keyword")
    statuses = filtering.get("advertiser_status")
    allowed = None if statuses is None else set(_string_list(statuses, "advertiser_status"))
    if allowed is not None and not allowed <= set(ACCOUNT_STATUSES):
        raise _ApiError(_BAD_PARAMETER, "filtering.advertiser_status: unknown status")
    accounts = [
        account
        for account in _listed(sim, center)
        if _keyword_match(account, keyword) and (allowed is None or account.status in allowed)
    ]
    page, page_info = _paginate(accounts, params)
    rows = [_balance_row(sim, account, wanted) for account in page]
    return {"advertiser_account_list": rows, "page_info": page_info}


def _balance_row(sim: Simulation, account: Account, wanted: set[str]) -> dict[str, Any]:
    view = sim.balances(account.advertiser_id)
    row: dict[str, Any] = {
        "advertiser_id": account.advertiser_id,
        "advertiser_name": account.name,
        "advertiser_status": account.status,
        "currency": account.currency,
        "timezone": account.timezone,
    }
    row.update({name: getattr(view, name) for name in _FLAT_BALANCE_FIELDS})
    if "balance_info" in wanted:
        row["balance_info"] = view.as_dict()
    if "budget_remaining" in wanted:
        budget = sim.budget(account.advertiser_id)
        row.update(
            budget_mode=budget.budget_mode,
            budget=budget.budget,
            budget_cost=budget.budget_cost,
            budget_remaining=budget.budget_remaining,
        )
    return row


def _bc_balance_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/balance/get/``: the business center's balance (its accounts' sum here)."""
    center = _center(sim, params)
    view = sim.bc_balances(center.bc_id)
    data: dict[str, Any] = {"bc_id": center.bc_id, "currency": center.currency}
    data.update({name: getattr(view, name) for name in _FLAT_BALANCE_FIELDS})
    return data


def _advertiser_info(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/advertiser/info/``: account details and one balance figure."""
    ids = _string_list(_json_param(params, "advertiser_ids", list), "advertiser_ids")
    if not ids:
        raise _ApiError(_BAD_PARAMETER, "advertiser_ids: required")
    rows = []
    for advertiser_id in ids:
        try:
            account = sim.account(advertiser_id)
        except UnknownAccountError:
            message = f"No permission to operate advertiser {advertiser_id}"
            raise _ApiError(_NO_PERMISSION, message) from None
        rows.append(
            {
                "advertiser_id": account.advertiser_id,
                "name": account.name,
                "status": account.status,
                "currency": account.currency,
                "timezone": account.timezone,
                "owner_bc_id": account.bc_id,
                # One figure without the cash/credit split: what the account can spend.
                "balance": sim.balances(advertiser_id).valid_account_balance,
            }
        )
    return {"list": rows}


def _parse_date(text: str | None, name: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _ApiError(_BAD_PARAMETER, f"filtering.{name}: expected YYYY-MM-DD") from None


def _check_span(span: timedelta, what: str) -> None:
    """``span`` is end minus start of a filter's range."""
    if span < timedelta(0):
        raise _ApiError(_BAD_PARAMETER, f"filtering: {what} start is after its end")
    if span > _MAX_SPAN:
        raise _ApiError(_BAD_PARAMETER, f"filtering: {what} span exceeds 365 days")


def _bc_account_cost_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/account/cost/get/``: spend per account over UTC days, cash vs ad credit."""
    center = _center(sim, params)
    filtering = _filtering(params)
    today = sim.now.astimezone(UTC).date()
    last = _parse_date(_optional_str(filtering, "end_date"), "end_date", today)
    first = _parse_date(
        _optional_str(filtering, "start_date"),
        "start_date",
        last - timedelta(days=_DEFAULT_SPAN_DAYS - 1),
    )
    _check_span(last - first, "date")
    keyword = _optional_str(filtering, "keyword")
    accounts = [a for a in _listed(sim, center) if _keyword_match(a, keyword)]
    page, page_info = _paginate(accounts, params)
    rows = [_cost_row(a, sim.spend_between(a.advertiser_id, first, last)) for a in page]
    listed = tuple(a.advertiser_id for a in accounts)
    summary = _cost_amounts(sim.total_spend_between(listed, first, last), center.currency)
    return {"cost_list": rows, "transaction_summary": summary, "page_info": page_info}


def _cost_amounts(spend: DaySpend, currency: str) -> dict[str, Any]:
    cash, grant = money(spend.cash_amount), money(spend.grant_amount)
    return {
        "amount": cash + grant,
        "cash_amount": cash,
        "grant_amount": grant,
        "tax_amount": money(Decimal(0)),
        "currency": currency,
    }


def _cost_row(account: Account, spend: DaySpend) -> dict[str, Any]:
    return {
        "advertiser_id": account.advertiser_id,
        "advertiser_name": account.name,
        **_cost_amounts(spend, account.currency),
    }


def _parse_time(text: str | None, name: str, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        # Filter times are read as UTC; the replies carry each account's own time zone.
        return datetime.strptime(text, _TRANSACTION_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        message = f"filtering.{name}: expected YYYY-MM-DD HH:MM:SS"
        raise _ApiError(_BAD_PARAMETER, message) from None


def _bc_account_transaction_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/account/transaction/get/``: top-ups and ad credit issued or expired."""
    center = _center(sim, params)
    level = params.get("transaction_level", "ADVERTISER")
    if level not in ("ADVERTISER", "BC"):
        raise _ApiError(_BAD_PARAMETER, "transaction_level: must be ADVERTISER or BC")
    filtering = _filtering(params)
    kinds = filtering.get("transaction_types")
    kind_set = None if kinds is None else set(_string_list(kinds, "transaction_types"))
    ids = filtering.get("account_ids")
    id_set = None if ids is None else set(_string_list(ids, "account_ids"))
    last = _parse_time(_optional_str(filtering, "end_time"), "end_time", sim.now)
    first = _parse_time(
        _optional_str(filtering, "start_time"), "start_time", last - timedelta(days=7)
    )
    _check_span(last - first, "time")
    # Only advertiser-level billing is simulated; the BC's own ledger is empty.
    found = [
        tx
        for tx in reversed(sim.transactions())
        if level == "ADVERTISER"
        and tx.bc_id == center.bc_id
        and (kind_set is None or tx.transaction_type in kind_set)
        and (id_set is None or tx.advertiser_id in id_set)
        and first <= tx.create_time <= last
    ]
    page, page_info = _paginate(found, params)
    rows = [_transaction_row(sim.account(tx.advertiser_id), tx) for tx in page]
    return {"transaction_list": rows, "page_info": page_info}


def _transaction_row(account: Account, tx: Transaction) -> dict[str, Any]:
    amount = money(tx.amount)
    local_time = tx.create_time.astimezone(ZoneInfo(account.timezone))
    return {
        "transaction_id": tx.transaction_id,
        "account_id": tx.advertiser_id,
        "account_name": account.name,
        "bc_id": tx.bc_id,
        "amount": amount,
        "subtotal": amount,
        "tax_amount": money(Decimal(0)),
        "currency": account.currency,
        "amount_type": tx.amount_type,
        "transaction_type": tx.transaction_type,
        "billing_type": "CASH" if tx.transaction_type == "ADD_BALANCE" else "PROMOTION",
        "timezone": account.timezone,
        "create_time": local_time.strftime(_TRANSACTION_TIME_FORMAT),
    }


def _report_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/report/integrated/get/``: spend per account-local day, metric values as strings."""
    advertiser_id = _required(params, "advertiser_id")
    try:
        account = sim.account(advertiser_id)
    except UnknownAccountError:
        message = f"No permission to operate advertiser {advertiser_id}"
        raise _ApiError(_NO_PERMISSION, message) from None
    if params.get("report_type", "BASIC") != "BASIC":
        raise _ApiError(_BAD_PARAMETER, "report_type: only BASIC is simulated")
    level = _required(params, "data_level")
    keys = {"AUCTION_ADVERTISER": "advertiser_id", "AUCTION_CAMPAIGN": "campaign_id"}
    if level not in keys:
        raise _ApiError(_BAD_PARAMETER, "data_level: AUCTION_ADVERTISER or AUCTION_CAMPAIGN")
    dimensions = _string_list(_json_param(params, "dimensions", list) or [], "dimensions", 4)
    if set(dimensions) != {keys[level], "stat_time_day"}:
        raise _ApiError(_BAD_PARAMETER, f"dimensions: [{keys[level]}, stat_time_day] expected")
    metrics = _string_list(_json_param(params, "metrics", list) or [], "metrics", 20)
    if not metrics or not set(metrics) <= _REPORT_METRICS:
        raise _ApiError(_BAD_PARAMETER, f"metrics: choose from {sorted(_REPORT_METRICS)}")
    first = _parse_date(_required(params, "start_date"), "start_date", date.min)
    last = _parse_date(_required(params, "end_date"), "end_date", date.max)
    if not timedelta(0) <= last - first < timedelta(days=_MAX_REPORT_DAYS):
        raise _ApiError(_BAD_PARAMETER, "start_date/end_date: at most 30 days, start first")
    days = [(d, spend) for d, spend in sim.local_daily_spend(advertiser_id).items()]
    rows = [
        {
            "dimensions": {
                keys[level]: advertiser_id
                if level == "AUCTION_ADVERTISER"
                else f"{account.advertiser_id}1",
                "stat_time_day": f"{day.isoformat()} 00:00:00",
            },
            "metrics": {name: _report_metric(name, spend) for name in metrics},
        }
        for day, spend in days
        if first <= day <= last
    ]
    page, page_info = _paginate(rows, params, _MAX_REPORT_PAGE_SIZE)
    return {"list": page, "page_info": page_info}


def _report_metric(name: str, spend: DaySpend) -> str:
    amounts = {
        "spend": spend.amount,
        "cash_spend": spend.cash_amount,
        "voucher_spend": spend.grant_amount,
    }
    if name in amounts:
        return str(money(amounts[name]))
    return "0"  # impressions and clicks are not simulated


_API_ROUTES: dict[str, _Handler] = {
    "/advertiser/balance/get/": _advertiser_balance_get,
    "/bc/balance/get/": _bc_balance_get,
    "/advertiser/info/": _advertiser_info,
    "/bc/account/cost/get/": _bc_account_cost_get,
    "/bc/account/transaction/get/": _bc_account_transaction_get,
    "/report/integrated/get/": _report_get,
}


# --- admission: token, QPS, faults ------------------------------------------------------------


@dataclass
class SandboxStats:
    """What clients did, for tests and the demo to check a client's manners."""

    requests_by_path: Counter[str] = field(default_factory=Counter)
    replies_by_code: Counter[str] = field(default_factory=Counter)
    max_requests_per_second: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_by_path": dict(self.requests_by_path),
            "replies_by_code": dict(self.replies_by_code),
            "max_requests_per_second": self.max_requests_per_second,
            "throttled": self.throttled,
        }


class _QpsWindow:
    """Arrivals per token in a sliding 1-second window; throttled requests count too."""

    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}

    def arrive(self, token: str, at: float) -> int:
        """Record one arrival; returns how many arrived in the second ending now."""
        arrivals = self._arrivals.setdefault(token, deque())
        while arrivals and arrivals[0] <= at - 1.0:
            arrivals.popleft()
        arrivals.append(at)
        return len(arrivals)


def _envelope(code: int, message: str, data: dict[str, Any]) -> Response:
    body = {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data}
    return Response(wire.dumps(body), media_type="application/json")


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(wire.dumps(body), status_code=status_code, media_type="application/json")


class _SandboxApi:
    """The request pipeline shared by every API route."""

    def __init__(
        self,
        simulation: Simulation,
        clock: SimClock,
        *,
        access_token: str,
        qps_limit: int,
        faults: Faults,
        monotonic: Callable[[], float],
    ) -> None:
        self.simulation = simulation
        self.clock = clock
        self.stats = SandboxStats()
        self._token = access_token
        self._qps_limit = qps_limit
        self._window = _QpsWindow()
        self._monotonic = monotonic
        self.faults = faults
        self._dice = random.Random(faults.seed)  # noqa: S311 - reproducible, not secret

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._dice = random.Random(faults.seed)  # noqa: S311

    def sync(self) -> None:
        """Bring the simulation up to the clock's time."""
        self.simulation.advance_to(self.clock.now())

    def route(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.call(request, handler)

        return endpoint

    async def call(self, request: Request, handler: _Handler) -> Response:
        response = await self._answer(request, handler)
        # RFC 7231 Date, in simulated time: what the client takes for "now" at the API.
        response.headers["date"] = format_datetime(self.simulation.now.astimezone(UTC), usegmt=True)
        return response

    async def _answer(self, request: Request, handler: _Handler) -> Response:
        self.stats.requests_by_path[request.url.path] += 1
        self.sync()
        try:
            self._admit(request.headers.get("Access-Token"))
            self._check_access(request.query_params)
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            fault = self._roll_faults()
            if fault == "http_500":
                return self._count(PlainTextResponse("Internal Server Error", 500), fault)
            if fault == "error_code":
                raise _ApiError(_SYSTEM_ERROR, "System error, please retry later.")
            self.sync()
            data = handler(self.simulation, request.query_params)
        except _ApiError as error:
            return self._count(_envelope(error.code, error.message, {}), str(error.code))
        return self._count(_envelope(_OK, "OK", data), str(_OK))

    def _admit(self, token: str | None) -> None:
        if token != self._token:
            raise _ApiError(_BAD_TOKEN, "Access token is incorrect or has been revoked.")
        seen = self._window.arrive(token, self._monotonic())
        self.stats.max_requests_per_second = max(self.stats.max_requests_per_second, seen)
        if seen > self._qps_limit:
            self.stats.throttled += 1
            raise _ApiError(_RATE_LIMITED, "Too many requests. Please retry in some time.")

    def _check_access(self, params: QueryParams) -> None:
        """40105 for a business center (or one of its accounts) whose access is revoked."""
        bc_id = params.get("bc_id")
        advertiser_id = params.get("advertiser_id")
        if bc_id is None and advertiser_id is not None:
            with contextlib.suppress(UnknownAccountError):
                bc_id = self.simulation.account(advertiser_id).bc_id
        if bc_id is not None and self.simulation.revoked(bc_id):
            raise _ApiError(_BAD_TOKEN, "Access token is incorrect or has been revoked.")

    def _roll_faults(self) -> Literal["http_500", "error_code"] | None:
        # Both dice are rolled on every admitted request, so the fault sequence depends only
        # on the seed and the request count, not on which rates are set.
        http_roll, code_roll = self._dice.random(), self._dice.random()
        if http_roll < self.faults.http_500_rate:
            return "http_500"
        if code_roll < self.faults.error_code_rate:
            return "error_code"
        return None

    def _count(self, response: Response, code: str) -> Response:
        self.stats.replies_by_code[code] += 1
        return response


# --- admin routes -----------------------------------------------------------------------------


class _AdminError(Exception):
    """A bad admin request, answered as HTTP 400 with ``{"error": ...}``."""


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = wire.loads(await request.body() or b"{}")
    except ValueError:
        raise _AdminError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _AdminError("body must be a JSON object")
    return body


def _non_negative_number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
        raise _AdminError(f"{name}: a number >= 0 is required")
    return float(value)


def _state(api: _SandboxApi) -> dict[str, Any]:
    sim = api.simulation
    return {
        "sim_time": sim.now,
        "speed": api.clock.speed,
        "business_centers": [
            {
                "bc_id": center.bc_id,
                "name": center.name,
                "currency": center.currency,
                "balance": sim.bc_balances(center.bc_id).as_dict(),
                "advertisers": [_account_state(sim, adv_id) for adv_id in center.advertiser_ids],
            }
            for center in sim.business_centers
        ],
        "applied_events": [
            {"at": applied.at, **applied.action.model_dump(exclude_none=True)}
            for applied in sim.applied
        ],
    }


def _account_state(sim: Simulation, advertiser_id: str) -> dict[str, Any]:
    account = sim.account(advertiser_id)
    view: BalanceView = sim.balances(advertiser_id)
    return {
        "advertiser_id": advertiser_id,
        "name": account.name,
        "status": account.status,
        "currency": account.currency,
        "burn_rate_per_hour": account.burn_rate_per_hour,
        "balance_info": view.as_dict(),
    }


def _admin_routes(api: _SandboxApi) -> list[BaseRoute]:
    def admin(
        action: Callable[[Request], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            api.stats.requests_by_path[request.url.path] += 1
            try:
                api.sync()
                return _json(await action(request))
            except _AdminError as error:
                return _json({"error": str(error)}, status_code=400)

        return endpoint

    async def state(_: Request) -> Any:
        return _state(api)

    async def stats(_: Request) -> Any:
        return api.stats.as_dict()

    async def advance(request: Request) -> Any:
        api.clock.advance(_non_negative_number(await _body(request), "seconds"))
        api.sync()
        return {"sim_time": api.simulation.now}

    async def speed(request: Request) -> Any:
        api.clock.set_speed(_non_negative_number(await _body(request), "speed"))
        return {"sim_time": api.simulation.now, "speed": api.clock.speed}

    async def event(request: Request) -> Any:
        try:
            action = EventAction.model_validate(await _body(request))
            applied = api.simulation.apply_now(action)
        except (ValidationError, UnknownAccountError) as exc:
            raise _AdminError(str(exc)) from None
        return {
            "sim_time": applied.at,
            "applied": action.model_dump(exclude_none=True),
            "balance_info": api.simulation.balances(action.advertiser_id).as_dict(),
        }

    async def faults(request: Request) -> Any:
        try:
            api.set_faults(Faults.model_validate(await _body(request)))
        except ValidationError as exc:
            raise _AdminError(str(exc)) from None
        return api.faults.model_dump()

    return [
        Route(f"{ADMIN_PREFIX}/state", admin(state), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/stats", admin(stats), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/clock/advance", admin(advance), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/clock/speed", admin(speed), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/events", admin(event), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/faults", admin(faults), methods=["POST"]),
    ]


def _routes(api: _SandboxApi) -> list[BaseRoute]:
    api_routes: list[BaseRoute] = [
        Route(f"{API_PREFIX}{path}", api.route(handler), methods=["GET"])
        for path, handler in _API_ROUTES.items()
    ]
    return api_routes + _admin_routes(api)


class Sandbox:
    """A scenario brought to life: simulation, clock, ASGI app and request statistics.

    ``monotonic`` drives both the clock and the QPS window, so tests can fake real time.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.simulation = Simulation(scenario)
        self.clock = SimClock(
            scenario.start, scenario.speed if speed is None else speed, monotonic=monotonic
        )
        self._api = _SandboxApi(
            self.simulation,
            self.clock,
            access_token=scenario.access_token,
            qps_limit=scenario.qps_limit,
            faults=scenario.faults,
            monotonic=monotonic,
        )
        self.app = Starlette(routes=_routes(self._api))

    @property
    def stats(self) -> SandboxStats:
        return self._api.stats

    @property
    def faults(self) -> Faults:
        return self._api.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults and reseed their dice."""
        self._api.set_faults(faults)

    def sync(self) -> Simulation:
        """The simulation, brought up to the clock's current time."""
        self._api.sync()
        return self.simulation


# --- running it -------------------------------------------------------------------------------


class SandboxServer:
    """The sandbox on a real socket, in the current event loop.

    Simulated time stands still until the server listens, so a slow start costs no spend.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float | None = None,
        handle_signals: bool = False,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        self._speed = scenario.speed if speed is None else speed
        self.sandbox = Sandbox(scenario, speed=0)
        self._http = AsgiServer(
            self.sandbox.app,
            host=host,
            port=port,
            handle_signals=handle_signals,
            date_header=False,
        )

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def root_url(self) -> str:
        return self._http.url

    @property
    def base_url(self) -> str:
        """Where a TikTok client points instead of ``https://business-api.tiktok.com/...``."""
        return f"{self.root_url}{API_PREFIX}"

    @property
    def admin_url(self) -> str:
        return f"{self.root_url}{ADMIN_PREFIX}"

    async def start(self) -> None:
        """Listen; returns once the port is bound. Raises OSError if it cannot bind."""
        await self._http.start()
        self.sandbox.clock.set_speed(self._speed)

    async def wait(self) -> None:
        """Until the server stops (a signal, when ``handle_signals``, or ``stop``)."""
        await self._http.wait()

    async def stop(self) -> None:
        """Stop listening and wait for open requests to finish."""
        await self._http.stop()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


async def serve(
    scenario: Scenario | str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float | None = None,
    *,
    handle_signals: bool = False,
) -> None:
    """Run the sandbox until cancelled (or, with ``handle_signals``, until Ctrl-C)."""
    async with SandboxServer(
        scenario, host=host, port=port, speed=speed, handle_signals=handle_signals
    ) as server:
        if handle_signals:
            # The standalone sandbox owns its process: the simulation (every account of the
            # scenario) lives as long as it does, so it is moved out of the collector's reach.
            # Otherwise full collections over 10,000 accounts stall the API for 100-200 ms,
            # which its own QPS window then counts as bursts (40100 to a client that kept
            # to the limit).
            gc.collect()
            gc.freeze()
        log.info(
            "sandbox.listening",
            base_url=server.base_url,
            admin_url=server.admin_url,
            speed=server.sandbox.clock.speed,
        )
        await server.wait()


def run_sandbox(
    scenario_path: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    speed: float | None = None,
) -> None:
    """Blocking entry point for ``creditwatch sandbox``; returns after Ctrl-C.

    Raises ScenarioError for a bad scenario and OSError if the port cannot be bound.
    """
    scenario = load_scenario(scenario_path)
    # uvicorn re-raises the SIGINT it handled once it has shut down; that is our normal exit.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(scenario, host, port, speed, handle_signals=True))
