"""The status page's burn-down chart as inline-SVG geometry: no JavaScript, no build step.

The x axis runs from ``days`` before the newest observation to ``ahead_days`` after it; the y
axis from 0 to the largest balance shown. The solid line is the grant balance history; the
dashed one the forecast from the newest valid grant balance down to 0 at the projected
exhaustion (cut at the right edge when that is further out). ``expiries`` inside the window
become vertical markers (the account page shows when each credit expires).

Usage::

    chart = burndown_chart(points, now=observed_at, balance=valid_grant, runs_out=when)
    # <polyline points="{{ chart.actual }}"> and <line x1=... > in the template
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

__all__ = ["Chart", "burndown_chart"]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    # "x,y x,y ..." for <polyline>; empty when there is no history.
    actual: str
    # x1, y1, x2, y2 of the dashed forecast, or None when nothing is being spent.
    forecast: tuple[float, float, float, float] | None
    # x of "now" (the newest observation), for a faint marker.
    now_x: float
    top: Decimal
    # x of each expiry inside the window, with what expires then (a label for the marker).
    expiries: tuple[tuple[float, str], ...] = ()


def burndown_chart(
    points: Sequence[tuple[datetime, Decimal]],
    *,
    now: datetime,
    balance: Decimal,
    runs_out: datetime | None,
    days: int = 14,
    ahead_days: int = 7,
    width: int = 280,
    height: int = 64,
    expiries: Sequence[tuple[datetime, str]] = (),
) -> Chart:
    start = now - timedelta(days=days)
    end = now + timedelta(days=ahead_days)
    span = (end - start).total_seconds()
    top = max([balance, *(grant for _, grant in points)], default=Decimal(0))
    scale = float(top) or 1.0
    pad = 2.0  # keep the strokes inside the box

    def x(at: datetime) -> float:
        share = min(max((at - start).total_seconds() / span, 0.0), 1.0)
        return round(pad + share * (width - 2 * pad), 1)

    def y(amount: Decimal | float) -> float:
        share = min(max(float(amount) / scale, 0.0), 1.0)
        return round(height - pad - share * (height - 2 * pad), 1)

    actual = " ".join(f"{x(at)},{y(grant)}" for at, grant in points if at >= start)
    forecast: tuple[float, float, float, float] | None = None
    if runs_out is not None and balance > 0:
        until = min(runs_out, end)
        left = float(balance)
        if runs_out > now:
            left *= 1 - (until - now).total_seconds() / (runs_out - now).total_seconds()
        forecast = (x(now), y(balance), x(until), y(max(left, 0.0)))
    markers = tuple((x(at), label) for at, label in expiries if start <= at <= end)
    return Chart(width, height, actual, forecast, x(now), top, markers)
