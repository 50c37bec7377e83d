"""Balance snapshots as the tests publish them: a USD account whose ad credit (grant) is all
valid, nothing of it frozen, at a given moment."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from workers.contract.snapshots import AccountBalanceSnapshot, BalanceInfo


def grant_snapshot(
    bc_id: str,
    advertiser_id: str,
    grant: str,
    observed_at: datetime,
    *,
    name: str = "",
    valid_cash: str = "0",
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
