"""Snapshots as the tests publish them, in USD: an account's balances whose ad credit (grant)
is all valid, nothing of it frozen, and one day's spend split by what paid for it."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from workers.contract.snapshots import AccountBalanceSnapshot, BalanceInfo, DailySpendSnapshot


def grant_snapshot(
    bc_id: str,
    advertiser_id: str,
    grant: str | Decimal,
    observed_at: datetime,
    *,
    name: str = "",
    valid_cash: str | Decimal = "0",
) -> AccountBalanceSnapshot:
    """One poll's snapshot of ``advertiser_id`` holding ``grant`` of credit."""
    amount = Decimal(grant)
    return AccountBalanceSnapshot(
        bc_id=bc_id,
        advertiser_id=advertiser_id,
        advertiser_name=name,
        currency="USD",
        balances=BalanceInfo(
            grant_balance=amount, valid_grant_balance=amount, valid_cash_balance=Decimal(valid_cash)
        ),
        observed_at=observed_at,
    )


def day_spend(
    advertiser_id: str,
    day: date,
    observed_at: datetime,
    *,
    source: Literal["bc_cost", "report"] = "bc_cost",
    cash: str = "0",
    grant: str = "0",
    name: str = "",
) -> DailySpendSnapshot:
    """``advertiser_id``'s spend on ``day`` (business center 70), its total what cash and
    grant paid."""
    return DailySpendSnapshot(
        source=source,
        bc_id="70",
        advertiser_id=advertiser_id,
        advertiser_name=name,
        day=day,
        cash_amount=Decimal(cash),
        grant_amount=Decimal(grant),
        total=Decimal(cash) + Decimal(grant),
        currency="USD",
        observed_at=observed_at,
    )
