"""The sandbox's balance endpoints: ``/advertiser/balance/get/`` (a business center's ad
accounts with their balances), ``/bc/balance/get/`` (the center's own) and
``/advertiser/info/``.

Usage::

    ROUTES["/bc/balance/get/"](simulation, request.query_params)    # -> the envelope's data
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.datastructures import QueryParams

from .envelope import BAD_PARAMETER, NO_PERMISSION, ApiError
from .params import (
    Handler,
    center_of,
    filtering_of,
    json_param,
    keyword_match,
    listed_accounts,
    optional_str,
    paginate,
    string_list,
)
from .scenario import ACCOUNT_STATUSES
from .simulation import Account, BusinessCenter, Simulation, UnknownAccountError

__all__ = ["ROUTES"]

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
# Only on request through `fields` (the reference's "additional fields").
_ADDITIONAL_FIELDS = (
    "budget_remaining",
    "budget_frequency_restriction",
    "budget_amount_restriction",
    "min_transferable_amount",
    "max_transferable_amount",
    "balance_info",
)


def _advertiser_balance_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/advertiser/balance/get/``: a business center's ad accounts with their balances.

    ``fields`` is read as the scenario's ``fields_reading`` says: ``lenient`` adds the listed
    additional fields to the default reply; ``literal`` returns the id and the listed fields
    only, unless all six additional fields are asked with page_size 1 (the reference's case).
    """
    center = center_of(sim, params)
    wanted = string_list(json_param(params, "fields", list) or [], "fields")
    filtering = filtering_of(params)
    keyword = optional_str(filtering, "keyword")
    statuses = filtering.get("advertiser_status")
    allowed = None if statuses is None else set(string_list(statuses, "advertiser_status"))
    if allowed is not None and not allowed <= set(ACCOUNT_STATUSES):
        raise ApiError(BAD_PARAMETER, "filtering.advertiser_status: unknown status")
    accounts = [
        account
        for account in listed_accounts(sim, center)
        if keyword_match(account, keyword) and (allowed is None or account.status in allowed)
    ]
    page, page_info = paginate(accounts, params)
    literal = (
        sim.fields_reading == "literal"
        and bool(wanted)
        and not (set(wanted) == set(_ADDITIONAL_FIELDS) and page_info["page_size"] == 1)
    )
    rows = []
    for account in page:
        row = _balance_row(sim, center, account, set(wanted))
        if literal:
            row = {name: row[name] for name in ("advertiser_id", *wanted) if name in row}
        rows.append(row)
    return {"advertiser_account_list": rows, "page_info": page_info}


def _balance_row(
    sim: Simulation, center: BusinessCenter, account: Account, wanted: set[str]
) -> dict[str, Any]:
    view = sim.balances(account.advertiser_id)
    budget = sim.budget(account.advertiser_id)
    row: dict[str, Any] = {
        "advertiser_id": account.advertiser_id,
        "advertiser_name": account.name,
        "advertiser_status": account.status,
        "advertiser_type": "AUCTION",
        "currency": account.currency,
        "timezone": account.timezone,
    }
    row.update({name: getattr(view, name) for name in _FLAT_BALANCE_FIELDS})
    row.update(
        balance_reminder=sim.balance_reminder(account.advertiser_id),
        budget_mode=budget.budget_mode,
        budget=budget.budget,
        budget_cost=budget.budget_cost,
    )
    portfolio = center.portfolio
    if portfolio is not None:
        # The flat cash-side figures describe the portfolio; the grant_* ones the account.
        row.update(_portfolio_figures(sim, center))
        row.update(
            payment_portfolio_id=portfolio.payment_portfolio_id,
            payment_portfolio_name=portfolio.name,
            payment_portfolio_type=portfolio.type,
        )
    if "balance_info" in wanted:
        row["balance_info"] = view.as_dict()
    if "budget_remaining" in wanted:
        row["budget_remaining"] = budget.budget_remaining
    return row


def _portfolio_figures(sim: Simulation, center: BusinessCenter) -> dict[str, Decimal]:
    """The cash-side flat figures of a portfolio: the sum over the accounts paying from it."""
    views = [sim.balances(adv_id) for adv_id in center.advertiser_ids]
    cash = sum((v.cash_balance for v in views), Decimal(0))
    valid_cash = sum((v.valid_cash_balance for v in views), Decimal(0))
    frozen_cash = sum((v.frozen_cash_balance for v in views), Decimal(0))
    tax = sum((v.cash_tax for v in views), Decimal(0))
    return {
        "account_balance": cash,
        "valid_account_balance": valid_cash,
        "frozen_balance": frozen_cash,
        "tax": tax,
        "cash_balance": cash,
        "valid_cash_balance": valid_cash,
        "transferable_amount": valid_cash,
    }


def _bc_balance_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/balance/get/``: the business center's balance (its accounts' sum here)."""
    center = center_of(sim, params)
    view = sim.bc_balances(center.bc_id)
    data: dict[str, Any] = {"bc_id": center.bc_id, "currency": center.currency}
    data.update({name: getattr(view, name) for name in _FLAT_BALANCE_FIELDS})
    return data


def _advertiser_info(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/advertiser/info/``: account details and one balance figure."""
    ids = string_list(json_param(params, "advertiser_ids", list), "advertiser_ids")
    if not ids:
        raise ApiError(BAD_PARAMETER, "advertiser_ids: required")
    rows = []
    for advertiser_id in ids:
        try:
            account = sim.account(advertiser_id)
        except UnknownAccountError:
            message = f"No permission to operate advertiser {advertiser_id}"
            raise ApiError(NO_PERMISSION, message) from None
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


ROUTES: dict[str, Handler] = {
    "/advertiser/balance/get/": _advertiser_balance_get,
    "/bc/balance/get/": _bc_balance_get,
    "/advertiser/info/": _advertiser_info,
}
