"""The status page, server-rendered with Jinja2: the list at ``/`` and a page per account.

The list: a summary per currency of the accounts the query selects, then those accounts, 50
to a page, each with its grant balance, a 14-day burn-down with the dashed forecast to
exhaustion (inline SVG), projected exhaustion, next expiry, frozen amount, ladder progress and
the alerts firing now. The list works on ``ListRows``: each account's few list figures, as the
detectors wrote them beside its state (never the full states), and only the shown page's rows
get a full view with burn-down history (kept while their version and ledger hold). Versions,
ledgers, changed rows and firing alerts are read again once ``LIST_TTL_S`` old (one refresh at
a time, whoever asks; a slow one is not waited for beyond ``REFRESH_WAIT_S``); every search,
filter, sort and page in between reuses them.

The account page: a larger burn-down with expiry markers, every credit with its estimated
used / unused and projected forfeit, the credit transactions seen, the alert episodes with
every delivery and its attempts, and the silences that apply. Both read the same views as
``/v1/accounts`` and the same episodes as ``/v1/alerts``; the actions on them (declare a
credit, silence, replay) are the page's JavaScript calling ``/v1`` with the operator's token.

Usage::

    html = await pages.list_page(ListQuery(q="shop"))
    html = await pages.account_page("7100000000001")   # None: no such advertiser
"""

from __future__ import annotations

import asyncio
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import jinja2
from pydantic import ValidationError
from redis.asyncio import Redis

from config.ledger import Credit
from config.redis_text import decoded
from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.deliveries import Delivery
from service.deliver.silences import Silence, Silences
from service.detect.accounts import AccountsReader, AccountView, row_view
from service.detect.list_row import ListRow
from service.detect.state import AccountState
from service.http.account_list import (
    CurrencySummary,
    ListQuery,
    paginate,
    select,
    summarize,
)
from service.http.alert_history import AlertEpisode, alert_episodes
from service.http.chart import Chart, burndown_chart
from service.http.delivery_routes import delivery_store
from service.http.list_rows import FULL_KEPT, ListRows

__all__ = ["StatusPages"]

# How long the list's figures serve further queries before they are read again.
LIST_TTL_S = 15.0
# How long a request waits for a refresh before it is shown the list that refresh replaces.
REFRESH_WAIT_S = 0.05
# How many of the newest deliveries the account page looks through for its own.
DELIVERY_SCAN = 5_000
# Labels a silence may name that an account page can decide on by itself.
_ACCOUNT_LABELS = ("advertiser_id", "advertiser_name", "bc_id")
# The credit types the declare form offers: the Promotions page's (discounts need terms).
FORM_TYPES = ("free", "assignable", "conditional", "ladder_reward")

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("service.http", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def _money(amount: str | Decimal | None, currency: str) -> str:
    if amount is None:
        return "-"
    return f"{Decimal(amount):,.2f} {currency}"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


def _day(at: datetime | None) -> str:
    return at.astimezone(UTC).date().isoformat() if at else ""


def _last_day(valid_to: datetime) -> str:
    """The last whole day of validity: a ``valid_to`` at midnight ends the day before."""
    at = valid_to.astimezone(UTC)
    return (at - timedelta(days=1) if at.time() == time() else at).date().isoformat()


_TEMPLATES.filters["when"] = _when
_TEMPLATES.filters["last_day"] = _last_day
_TEMPLATES.filters["day"] = _day
_TEMPLATES.globals["money"] = _money


def _chart(view: AccountView, **size: Any) -> Chart | None:
    if view.observed_at is None:
        return None
    return burndown_chart(
        [(p.at, Decimal(p.grant)) for p in view.grant_history],
        now=view.observed_at,
        balance=Decimal(view.balances.valid_grant),
        runs_out=view.projected_exhaustion_at,
        **size,
    )


def _applies(silence: Silence, view: AccountView) -> bool:
    """The silence names no account label, or names this account's."""
    labels = {
        "advertiser_id": view.advertiser_id,
        "advertiser_name": view.advertiser_name,
        "bc_id": view.bc_id,
    }
    named = {k: v for k, v in silence.matchers.items() if k in _ACCOUNT_LABELS}
    return Silence.model_validate({**silence.model_dump(), "matchers": named}).matches(labels)


@dataclass(frozen=True)
class _Declared:
    """A declared credit as the account page lists it, with the detectors' estimates."""

    credit: Credit
    state: str  # live, expired, upcoming
    used: Decimal | None
    unused: Decimal | None
    forfeit: Decimal | None


def _declared(credits: Sequence[Credit], view: AccountView) -> list[_Declared]:
    live = {c.id: c for c in view.credits}
    at = view.observed_at or utc_now()
    out: list[_Declared] = []
    for credit in sorted(credits, key=lambda c: (c.valid_to, c.id)):
        shown = live.get(credit.id)
        if not credit.in_grant_balance:
            # A discount lowers charges: it holds nothing in the balance to estimate.
            state = "live" if credit.valid_from <= at < credit.valid_to else "not live"
            out.append(_Declared(credit, state, None, None, None))
        elif shown is not None:
            unused = Decimal(shown.unused)
            forfeit = Decimal(shown.projected_forfeit) if shown.projected_forfeit else None
            out.append(_Declared(credit, "live", credit.amount - unused, unused, forfeit))
        else:
            state = "upcoming" if at < credit.valid_from else "expired"
            out.append(_Declared(credit, state, None, None, None))
    return out


@dataclass(frozen=True)
class _Listed:
    """One refresh's rows, and what queries of them found (while it is the list shown)."""

    at: float  # monotonic
    read_at: datetime
    rows: list[ListRow]
    firing: list[AlertEpisode]
    centers: list[str]
    currencies: list[str]
    # Accounts whose rows are still being made (the first start after an upgrade).
    pending: int
    # Paging and re-sorting a selection, or re-asking it, costs no pass over every account.
    selected: dict[tuple[object, ...], list[ListRow]] = field(default_factory=dict)
    summaries: dict[tuple[object, ...], list[CurrencySummary]] = field(default_factory=dict)

    def select(self, query: ListQuery) -> tuple[list[ListRow], list[CurrencySummary]]:
        """The accounts ``query`` selects, in its order, and their summary."""
        ordered = _kept(self.selected, _key(query, "page", "per_page"))
        if ordered is None:
            ordered = self.selected[_key(query, "page", "per_page")] = select(self.rows, query)
        summary_key = _key(query, "page", "per_page", "sort")
        summaries = _kept(self.summaries, summary_key)
        if summaries is None:
            summaries = self.summaries[summary_key] = summarize(ordered, self.firing)
        return ordered, summaries


# Queries whose results a list keeps (each a list of references to its rows).
QUERIES_KEPT = 64


def _key(query: ListQuery, *leaving_out: str) -> tuple[object, ...]:
    return tuple(sorted(query.model_dump(exclude=set(leaving_out)).items()))


def _kept(found: dict[tuple[object, ...], Any], key: tuple[object, ...]) -> Any:
    if key not in found and len(found) >= QUERIES_KEPT:
        found.clear()
    return found.get(key)


class StatusPages:
    """Renders the list and account pages from Redis (state, ledger, alerts, deliveries)."""

    def __init__(self, reader: AccountsReader, redis: Redis, settings: Settings) -> None:
        self._reader = reader
        self._redis = redis
        self._settings = settings
        self._silences = Silences(redis, settings.streams)
        self._deliveries = delivery_store(redis, settings)
        self._rows = ListRows(reader, redis, settings)
        self._charts: dict[str, tuple[AccountView, Chart | None]] = {}
        self._listed: _Listed | None = None
        self._refreshing: asyncio.Task[None] | None = None

    async def _all(self) -> _Listed:
        """Every account's list row and the firing alerts, refreshed once ``LIST_TTL_S`` old.

        A refresh recomputes the accounts that changed since the last one: usually quick, and
        then waited for; when it takes longer than ``REFRESH_WAIT_S`` (a poll cycle's worth of
        accounts changed) the list it replaces is shown meanwhile. Only the first list, with
        nothing to show before it, is always waited for; a failed refresh fails the request.
        """
        listed = self._listed
        if self._refreshing is None and (
            listed is None or clock.monotonic() - listed.at > LIST_TTL_S
        ):
            self._refreshing = asyncio.create_task(self._refresh())
        task = self._refreshing
        if task is not None:
            await asyncio.wait({task}, timeout=None if listed is None else REFRESH_WAIT_S)
            if task.done():
                self._refreshing = None
                task.result()  # its error, if it failed
        assert self._listed is not None
        return self._listed

    async def _refresh(self) -> None:
        read_at = datetime.now(UTC)
        rows = await self._rows.refresh()
        episodes = await alert_episodes(self._redis, self._settings.streams)
        firing = [e for e in episodes if e.status == "firing"]
        self._listed = _Listed(
            clock.monotonic(),
            read_at,
            rows,
            firing,
            centers=sorted({r.bc_id for r in rows if r.bc_id}),
            currencies=sorted({r.currency for r in rows}),
            pending=self._rows.pending,
        )

    async def list_page(self, query: ListQuery) -> str:
        listed = await self._all()
        selected, summaries = listed.select(query)
        page = paginate(selected, query)
        # The page's rows again, with their burn-down history: cheap for 50 of them. A row
        # whose state cannot be read now is shown from its list figures alone.
        full = {
            v.advertiser_id: v for v in await self._rows.full([r.advertiser_id for r in page.rows])
        }
        rows = [
            {"view": v, "chart": self._list_chart(v), "forfeit": r.projected_forfeit}
            for r in page.rows
            for v in [full.get(r.advertiser_id) or row_view(r)]
        ]
        return _TEMPLATES.get_template("status.html.j2").render(
            rows=rows,
            page=page,
            query=query,
            summaries=summaries,
            alert_summaries={e.alert_id: e.summary for e in listed.firing},
            centers=listed.centers,
            currencies=listed.currencies,
            tracked=len(listed.rows),
            pending=listed.pending,
            read_at=listed.read_at,
            generated_at=datetime.now(UTC),
        )

    def _list_chart(self, view: AccountView) -> Chart | None:
        """A row's burn-down, drawn once per kept view (``ListRows.full`` reuses the view
        object while its version and ledger hold)."""
        drawn = self._charts.get(view.advertiser_id)
        if drawn is not None and drawn[0] is view:
            return drawn[1]
        if len(self._charts) >= FULL_KEPT:
            self._charts.clear()
        chart = _chart(view)
        self._charts[view.advertiser_id] = (view, chart)
        return chart

    async def account_page(self, advertiser_id: str) -> str | None:
        loaded = await self._reader.load(advertiser_id)
        if loaded is None:
            return None
        state, ledger = loaded
        view = self._reader.view(state, ledger)
        episodes = [
            e
            for e in await alert_episodes(self._redis, self._settings.streams)
            if e.advertiser_id == advertiser_id
        ]
        credits = _declared(ledger.credits, view)
        expiries = [
            (
                c.credit.valid_to,
                f"{c.credit.name or c.credit.id} expires {_when(c.credit.valid_to)}",
            )
            for c in credits
        ]
        now = utc_now()
        return _TEMPLATES.get_template("account.html.j2").render(
            view=view,
            chart=_chart(view, width=720, height=180, expiries=expiries),
            credits=credits,
            undeclared=[
                (c, Decimal(c.amount) - Decimal(c.unused)) for c in view.credits if not c.declared
            ],
            transactions=_transactions(state),
            episodes=episodes,
            deliveries=_by_alert(await self._account_deliveries(advertiser_id)),
            silences=[
                s
                for s in await self._silences.all()
                if s.state(now) != "expired" and _applies(s, view)
            ],
            kinds=sorted({e.kind for e in episodes} | {a.kind for a in view.active_alerts}),
            form_types=FORM_TYPES,
            now=now,
            generated_at=datetime.now(UTC),
        )

    def not_found_page(self, advertiser_id: str) -> str:
        return _TEMPLATES.get_template("not_found.html.j2").render(
            advertiser_id=advertiser_id, generated_at=datetime.now(UTC)
        )

    def bad_query_page(self, errors: Sequence[str]) -> str:
        return _TEMPLATES.get_template("not_found.html.j2").render(
            advertiser_id=None, errors=errors, generated_at=datetime.now(UTC)
        )

    async def _account_deliveries(self, advertiser_id: str) -> list[Delivery]:
        """The newest deliveries carrying a transition of this advertiser (one MGET)."""
        store = self._deliveries
        ids = await self._redis.zrevrange(store.index_key, 0, DELIVERY_SCAN - 1)
        if not ids:
            return []
        raws = await self._redis.mget([store.key(decoded(i)) for i in ids])
        out: list[Delivery] = []
        # Only documents that name the advertiser are decoded (most of the 5,000 do not).
        marker = f'"advertiser_id":"{advertiser_id}"'.encode()
        for raw in raws:
            if raw is None or marker not in (raw if isinstance(raw, bytes) else raw.encode()):
                continue
            try:
                delivery = Delivery.model_validate_json(raw)
            except ValidationError:
                continue  # the sender's to report; a page shows what it can read
            if any(t.advertiser_id == advertiser_id for t in delivery.transitions):
                out.append(delivery)
        return out


def _transactions(state: AccountState) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "id": tid,
                "type": r.transaction_type,
                "amount": r.amount,
                "at": r.create_time,
                "credit_id": r.credit_id,
            }
            for tid, r in state.transactions.items()
        ),
        key=lambda t: t["at"],
        reverse=True,
    )


def _by_alert(deliveries: Sequence[Delivery]) -> dict[str, list[Delivery]]:
    grouped: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        for alert_id in dict.fromkeys(t.alert_id for t in delivery.transitions):
            grouped.setdefault(alert_id, []).append(delivery)
    return grouped
