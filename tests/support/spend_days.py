"""Daily spend for the detector states tests and benchmarks build: the same figures each day."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from service.detect.state import DayFigure, SpendDays


def daily_spend(
    now: datetime, days: int, *, grant: Decimal, cash: Decimal = Decimal(0)
) -> SpendDays:
    """``grant`` and ``cash`` spent on each of the ``days`` days before ``now``'s day."""
    return SpendDays(
        {
            (now - timedelta(days=back)).date(): DayFigure(
                cash=cash, grant=grant, total=grant + cash, observed_at=now
            )
            for back in range(1, days + 1)
        }
    )
