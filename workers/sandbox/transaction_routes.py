"""The sandbox's ``/bc/account/transaction/get/``: the credit (promotion) transactions of a
business center's accounts, owned or shared in from other centers, times on the wall clock
of the account's zone.

Usage::

    ROUTES["/bc/account/transaction/get/"](simulation, request.query_params)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.datastructures import QueryParams

from workers.contract import zones

from .envelope import BAD_PARAMETER, NO_PERMISSION, ApiError
from .params import (
    Handler,
    center_of,
    check_span,
    filtering_of,
    optional_str,
    paginate,
    string_list,
)
from .simulation import Account, BusinessCenter, Simulation, Transaction, money

__all__ = ["ROUTES"]

_OWNED, _SHARED = "OWNED_BY_CURRENT_BUSINESS_CENTER", "SHARED_BY_OTHER_BUSINESS_CENTER"


def _parse_time(text: str | None, name: str, default: datetime, zone: str) -> datetime:
    if text is None:
        return default
    try:
        # Filter times are the BC's wall clock, not UTC.
        return zones.local_time(text, zone)
    except ValueError:
        message = f"filtering.{name}: expected YYYY-MM-DD HH:MM:SS"
        raise ApiError(BAD_PARAMETER, message) from None


def _bc_account_transaction_get(sim: Simulation, params: QueryParams) -> dict[str, Any]:
    """``/bc/account/transaction/get/``: top-ups and ad credit issued or expired.

    Accounts shared in from another BC are listed only when ``owner_of_account`` asks for
    ``SHARED_BY_OTHER_BUSINESS_CENTER`` (40001 if the BC's ``shared_access`` is off).
    """
    center = center_of(sim, params)
    level = params.get("transaction_level", "ADVERTISER")
    if level not in ("ADVERTISER", "BC"):
        raise ApiError(BAD_PARAMETER, "transaction_level: must be ADVERTISER or BC")
    filtering = filtering_of(params)
    kinds = filtering.get("transaction_types")
    kind_set = None if kinds is None else set(string_list(kinds, "transaction_types"))
    ids = filtering.get("account_ids")
    id_set = None if ids is None else set(string_list(ids, "account_ids"))
    billing = filtering.get("billing_types")
    billing_set = None if billing is None else set(string_list(billing, "billing_types"))
    if billing_set is not None and not billing_set <= {"CASH", "CREDIT"}:
        raise ApiError(BAD_PARAMETER, "filtering.billing_types: CASH or CREDIT")
    owners = set(string_list(filtering.get("owner_of_account") or [_OWNED], "owner_of_account"))
    if not owners <= {_OWNED, _SHARED}:
        raise ApiError(BAD_PARAMETER, "filtering.owner_of_account: unknown value")
    if _SHARED in owners and not center.shared_access:
        message = "No permission to read transactions of accounts shared by other BCs"
        raise ApiError(NO_PERMISSION, message)
    last = _parse_time(optional_str(filtering, "end_time"), "end_time", sim.now, center.timezone)
    first = _parse_time(
        optional_str(filtering, "start_time"),
        "start_time",
        last - timedelta(days=90),
        center.timezone,
    )
    check_span(last - first, "time")
    # Only advertiser-level billing is simulated; the BC's own ledger is empty.
    found = [
        tx
        for tx in reversed(sim.transactions())
        if level == "ADVERTISER"
        and tx.bc_id == center.bc_id
        and (_SHARED if sim.account(tx.advertiser_id).owner_bc_id else _OWNED) in owners
        and (kind_set is None or tx.transaction_type in kind_set)
        and (billing_set is None or _billing_type(tx) in billing_set)
        and (id_set is None or tx.advertiser_id in id_set)
        and first <= tx.create_time <= last
    ]
    page, page_info = paginate(found, params)
    rows = [_transaction_row(sim.account(tx.advertiser_id), center, tx) for tx in page]
    return {"transaction_list": rows, "page_info": page_info}


def _billing_type(tx: Transaction) -> str:
    return "CASH" if tx.transaction_type == "ADD_BALANCE" else "CREDIT"


def _transaction_row(account: Account, center: BusinessCenter, tx: Transaction) -> dict[str, Any]:
    amount = money(tx.amount)
    # Rows name their zone as an offset ("UTC+08:00"), and create_time is on that clock.
    zone = zones.offset_name(tx.create_time, account.timezone)
    row = {
        "transaction_id": tx.transaction_id,
        "account_id": tx.advertiser_id,
        "account_name": account.name,
        "bc_id": tx.bc_id,
        "bc_name": center.name,
        "amount": amount,
        "subtotal": amount,
        "tax_amount": money(Decimal(0)),
        "currency": account.currency,
        "amount_type": tx.amount_type,
        "transaction_type": tx.transaction_type,
        "billing_type": _billing_type(tx),
        "timezone": zone,
        "create_time": zones.wall_time(tx.create_time, zone),
        "invoice_id": "",
        "serial_number": "",
    }
    if center.portfolio is not None:
        row["payment_portfolio_id"] = center.portfolio.payment_portfolio_id
        row["payment_portfolio_name"] = center.portfolio.name
    return row


ROUTES: dict[str, Handler] = {"/bc/account/transaction/get/": _bc_account_transaction_get}
