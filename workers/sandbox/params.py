"""Reading the sandbox API's query parameters as TikTok does: 40002 for a bad one, 40001 for
a business center the scenario does not have; and the type of an endpoint handler.

Usage::

    center = center_of(sim, params)                       # bc_id, required
    rows, page_info = paginate(listed_accounts(sim, center), params)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar

from starlette.datastructures import QueryParams

from workers.contract import wire

from .envelope import BAD_PARAMETER, NO_PERMISSION, ApiError
from .simulation import Account, BusinessCenter, Simulation, UnknownAccountError

__all__ = [
    "MAX_IDS",
    "MAX_PAGE_SIZE",
    "MAX_SPAN",
    "Handler",
    "center_of",
    "check_span",
    "filtering_of",
    "int_param",
    "json_param",
    "keyword_match",
    "listed_accounts",
    "optional_str",
    "paginate",
    "parse_date",
    "required",
    "string_list",
]

MAX_PAGE_SIZE = 50
MAX_IDS = 100
MAX_SPAN = timedelta(days=365)

T = TypeVar("T")

# An endpoint: the simulation and the query in, the envelope's data out (or ApiError).
Handler = Callable[[Simulation, QueryParams], dict[str, Any]]


def required(params: QueryParams, name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(BAD_PARAMETER, f"{name}: required")
    return value


def json_param(params: QueryParams, name: str, kind: type[T]) -> T | None:
    """A JSON-text parameter (the API's way to pass arrays and objects in a query string)."""
    text = params.get(name)
    if text is None:
        return None
    try:
        value = wire.loads(text)
    except ValueError:
        raise ApiError(BAD_PARAMETER, f"{name}: not valid JSON") from None
    if not isinstance(value, kind):
        raise ApiError(BAD_PARAMETER, f"{name}: must be a JSON {kind.__name__}")
    return value


def string_list(value: object, name: str, limit: int = MAX_IDS) -> list[str]:
    if not isinstance(value, list) or len(value) > limit:
        raise ApiError(BAD_PARAMETER, f"{name}: must be an array of at most {limit} strings")
    if not all(isinstance(item, str | int) and not isinstance(item, bool) for item in value):
        raise ApiError(BAD_PARAMETER, f"{name}: must contain strings")
    return [str(item) for item in value]


def int_param(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(BAD_PARAMETER, f"{name}: must be an integer") from None
    if not low <= value <= high:
        raise ApiError(BAD_PARAMETER, f"{name}: must be between {low} and {high}")
    return value


def paginate(
    items: list[T], params: QueryParams, max_page_size: int = MAX_PAGE_SIZE
) -> tuple[list[T], dict[str, int]]:
    page = int_param(params, "page", 1, 1, 1_000_000)
    page_size = int_param(params, "page_size", 10, 1, max_page_size)
    total = len(items)
    info = {
        "page": page,
        "page_size": page_size,
        "total_number": total,
        "total_page": -(-total // page_size),
    }
    return items[(page - 1) * page_size : page * page_size], info


def filtering_of(params: QueryParams) -> dict[str, Any]:
    return json_param(params, "filtering", dict) or {}


def optional_str(filtering: dict[str, Any], name: str) -> str | None:
    value = filtering.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(BAD_PARAMETER, f"filtering.{name}: must be a string")
    return value or None


def center_of(sim: Simulation, params: QueryParams) -> BusinessCenter:
    bc_id = required(params, "bc_id")
    try:
        return sim.business_center(bc_id)
    except UnknownAccountError:
        raise ApiError(NO_PERMISSION, f"No permission to operate business center {bc_id}") from None


def listed_accounts(sim: Simulation, center: BusinessCenter) -> list[Account]:
    """The center's accounts that its listings show (hidden ones are left out)."""
    return [a for a in map(sim.account, center.advertiser_ids) if not a.hidden]


def keyword_match(account: Account, keyword: str | None) -> bool:
    if keyword is None:
        return True
    needle = keyword.casefold()
    return needle in account.name.casefold() or needle in account.advertiser_id


def parse_date(text: str | None, name: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(BAD_PARAMETER, f"filtering.{name}: expected YYYY-MM-DD") from None


def check_span(span: timedelta, what: str) -> None:
    """``span`` is end minus start of a filter's range."""
    if span < timedelta(0):
        raise ApiError(BAD_PARAMETER, f"filtering: {what} start is after its end")
    if span > MAX_SPAN:
        raise ApiError(BAD_PARAMETER, f"filtering: {what} span exceeds 365 days")
