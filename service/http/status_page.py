"""``GET /``: the read-only status page, one row per advertiser, server-rendered with Jinja2.

Each row: grant (ad credit) balance, a burn-down chart of the last 14 days with the dashed
forecast to exhaustion (inline SVG), projected exhaustion, next expiry, frozen amount, ladder
progress and the alerts firing now. It reads the same view as ``/v1/accounts`` and the same
episodes as ``/v1/alerts``; it refreshes itself every 30 s.

Usage::

    html = await render_status_page(reader, redis, settings.streams)
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import jinja2
from redis.asyncio import Redis

from config.settings import StreamSettings
from service.http.accounts import AccountsReader, AccountView
from service.http.alert_history import alert_episodes
from service.http.chart import Chart, burndown_chart

__all__ = ["render_status_page"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("service.http", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def _money(amount: str | None, currency: str) -> str:
    if amount is None:
        return "-"
    return f"{Decimal(amount):,.2f} {currency}"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


_TEMPLATES.filters["when"] = _when
_TEMPLATES.globals["money"] = _money


def _chart(view: AccountView) -> Chart | None:
    if view.observed_at is None:
        return None
    return burndown_chart(
        [(p.at, Decimal(p.grant)) for p in view.grant_history],
        now=view.observed_at,
        balance=Decimal(view.balances.valid_grant),
        runs_out=view.projected_exhaustion_at,
    )


async def render_status_page(reader: AccountsReader, redis: Redis, streams: StreamSettings) -> str:
    accounts = await reader.all()
    summaries = {
        e.alert_id: e.summary for e in await alert_episodes(redis, streams) if e.status == "firing"
    }
    rows = [{"view": view, "chart": _chart(view)} for view in accounts]
    template = _TEMPLATES.get_template("status.html.j2")
    return template.render(rows=rows, summaries=summaries, generated_at=datetime.now(UTC))
