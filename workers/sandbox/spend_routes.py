"""The sandbox's spend endpoints: ``/bc/account/cost/get/`` (spend per account and day) and
``/report/integrated/get/`` (``AUCTION_ADVERTISER`` or ``AUCTION_CAMPAIGN`` by
``stat_time_day``, metric values as strings, page_size up to 1000; the sandbox runs one
campaign per account).

Usage::

    ROUTES["/report/integrated/get/"](simulation, request.query_params)
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import Any

from starlette.datastructures import QueryParams

from .envelope import BAD_PARAMETER, NO_PERMISSION, ApiError
from .params import (
    Handler,
    center_of,
    check_span,
    filtering_of,
    json_param,
    keyword_match,
    listed_accounts,
    optional_str,
    paginate,
    parse_date,
    required,
    string_list,
)
from .simulation import Account, DaySpend, Simulation, UnknownAccountError, money

__all__ = ["ROUTES"]

_MAX_REPORT_PAGE_SIZE = 1000
_MAX_REPORT_DAYS = 30
_REPORT_METRICS = {"spend", "cash_spend", "voucher_spend", "impressions", "clicks"}
_DEFAULT_SPAN_DAYS = 7


def _bc_account_cost_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/account/cost/get/``: spend per account over UTC days, cash vs ad credit."""
    center = center_of(sim, params)
    filtering = filtering_of(params)
    today = sim.now.astimezone(UTC).date()
    last = parse_date(optional_str(filtering, "end_date"), "end_date", today)
    first = parse_date(
        optional_str(filtering, "start_date"),
        "start_date",
        last - timedelta(days=_DEFAULT_SPAN_DAYS - 1),
    )
    check_span(last - first, "date")
    keyword = optional_str(filtering, "keyword")
    accounts = [a for a in listed_accounts(sim, center) if keyword_match(a, keyword)]
    page, page_info = paginate(accounts, params)
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


def _report_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/report/integrated/get/``: spend per account-local day, metric values as strings."""
    advertiser_id = required(params, "advertiser_id")
    try:
        account = sim.account(advertiser_id)
    except UnknownAccountError:
        message = f"No permission to operate advertiser {advertiser_id}"
        raise ApiError(NO_PERMISSION, message) from None
    if params.get("report_type", "BASIC") != "BASIC":
        raise ApiError(BAD_PARAMETER, "report_type: only BASIC is simulated")
    level = required(params, "data_level")
    keys = {"AUCTION_ADVERTISER": "advertiser_id", "AUCTION_CAMPAIGN": "campaign_id"}
    if level not in keys:
        raise ApiError(BAD_PARAMETER, "data_level: AUCTION_ADVERTISER or AUCTION_CAMPAIGN")
    dimensions = string_list(json_param(params, "dimensions", list) or [], "dimensions", 4)
    if set(dimensions) != {keys[level], "stat_time_day"}:
        raise ApiError(BAD_PARAMETER, f"dimensions: [{keys[level]}, stat_time_day] expected")
    metrics = string_list(json_param(params, "metrics", list) or [], "metrics", 20)
    if not metrics or not set(metrics) <= _REPORT_METRICS:
        raise ApiError(BAD_PARAMETER, f"metrics: choose from {sorted(_REPORT_METRICS)}")
    first = parse_date(required(params, "start_date"), "start_date", date.min)
    last = parse_date(required(params, "end_date"), "end_date", date.max)
    if not timedelta(0) <= last - first < timedelta(days=_MAX_REPORT_DAYS):
        raise ApiError(BAD_PARAMETER, "start_date/end_date: at most 30 days, start first")
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
    page, page_info = paginate(rows, params, _MAX_REPORT_PAGE_SIZE)
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


ROUTES: dict[str, Handler] = {
    "/bc/account/cost/get/": _bc_account_cost_get,
    "/report/integrated/get/": _report_get,
}
