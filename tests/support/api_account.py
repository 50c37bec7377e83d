"""The account the API resource tests act on: its id, a credit and a ladder program as they
are posted, and its detector state 10 days into that credit, as of one fixed clock (``NOW``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from service.detect.state import (
    AccountState,
    BalancePoint,
    OpenEpisode,
    Profile,
)
from tests.support.spend_days import daily_spend

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
ADV = "7100000000001"

CREDIT: dict[str, Any] = {
    "id": "welcome-300",
    "advertiser_id": ADV,
    "name": "Welcome offer",
    "type": "free",
    "amount": "300",
    "currency": "USD",
    "valid_from": "2026-11-01T00:00:00Z",
    "valid_to": "2026-11-21T00:00:00Z",
}
PROGRAM: dict[str, Any] = {
    "id": "ladder-q4",
    "advertiser_id": ADV,
    "currency": "USD",
    "window_start": "2026-11-01T00:00:00Z",
    "window_end": "2026-12-01T00:00:00Z",
    "tiers": [{"threshold": "500", "reward": "50"}, {"threshold": "1500", "reward": "200"}],
}


def account_state() -> AccountState:
    """An account 10 days into a 300 credit, burning 20 a day, 100 frozen, a low alert open."""
    return AccountState(
        advertiser_id=ADV,
        profile=Profile(advertiser_name="Draining Shop", bc_id="7000000000001", currency="USD"),
        last_observed_at=NOW,
        now=NOW,
        grant=Decimal(160),
        valid_grant=Decimal(60),
        frozen_grant=Decimal(100),
        valid_cash=Decimal("500.5"),
        history=[
            BalancePoint(at=NOW - timedelta(hours=12), grant=Decimal(170), cash=Decimal(500)),
            BalancePoint(at=NOW, grant=Decimal(160), cash=Decimal(500)),
        ],
        spend={"bc_cost": daily_spend(NOW, 7, grant=Decimal(20))},
        open={"credit.low": OpenEpisode(alert_id="al_low", starts_at=NOW - timedelta(hours=1))},
    )
