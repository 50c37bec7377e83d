"""The accounts of the status page tests: three detector states (Alpha's credit running low
with a welcome credit issued, Beta empty, Gamma in EUR) as of one fixed clock (``NOW``), the
``state`` they are built with, and the advertiser ids a list page shows (``listed``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from config.ledger import Credit
from service.detect.state import (
    AccountState,
    BalancePoint,
    OpenEpisode,
    Profile,
    TransactionRecord,
)
from tests.support.spend_days import daily_spend
from workers.contract.snapshots import PROMOTION_ISSUED

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
ALPHA, BETA, GAMMA = "7100000000011", "7100000000022", "7100000000033"


def state(
    advertiser_id: str,
    name: str,
    *,
    bc: str,
    currency: str,
    valid: int,
    frozen: int = 0,
    burn: int = 0,
    alert: str | None = None,
    **extra: Any,
) -> AccountState:
    """An account burning ``burn`` a day out of its grant for the last week."""
    grant = Decimal(valid + frozen)
    return AccountState(
        advertiser_id=advertiser_id,
        profile=Profile(advertiser_name=name, bc_id=bc, currency=currency),
        last_observed_at=NOW,
        now=NOW,
        grant=grant,
        valid_grant=Decimal(valid),
        frozen_grant=Decimal(frozen),
        history=[
            BalancePoint(at=NOW - timedelta(hours=12), grant=grant + burn // 2, cash=Decimal(0)),
            BalancePoint(at=NOW, grant=grant, cash=Decimal(0)),
        ],
        spend={"bc_cost": daily_spend(NOW, 7, grant=Decimal(burn))} if burn else {},
        open=(
            {alert: OpenEpisode(alert_id=f"al_{advertiser_id}", starts_at=NOW - timedelta(hours=1))}
            if alert
            else {}
        ),
        **extra,
    )


# Alpha's credit expires in 5 days; the expiry rule projected 40 of it to be forfeited.
WELCOME = Credit.model_validate(
    {
        "id": "welcome-300",
        "advertiser_id": ALPHA,
        "name": "Welcome offer",
        "type": "free",
        "amount": "300",
        "currency": "USD",
        "valid_from": NOW - timedelta(days=9),
        "valid_to": NOW + timedelta(days=5),
    }
)
ISSUED = TransactionRecord(
    transaction_type=PROMOTION_ISSUED,
    amount=Decimal(300),
    create_time=NOW - timedelta(days=9),
    credit_id="welcome-300",
)
ACCOUNTS = [
    state(
        ALPHA,
        "Alpha Shop",
        bc="b1",
        currency="USD",
        valid=60,
        frozen=100,
        burn=20,
        alert="credit.low",
        credit_unused={"welcome-300": Decimal(40)},
        transactions={"tx-issued-1": ISSUED},
    ),
    state(BETA, "Beta Store", bc="b2", currency="USD", valid=0),
    state(GAMMA, "Gamma GmbH", bc="b1", currency="EUR", valid=500, burn=50),
]


def listed(html: str) -> list[str]:
    return re.findall(r'<tr class="account" data-advertiser-id="(\d+)"', html)
