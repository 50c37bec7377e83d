"""The status page's list: which accounts a query selects, in what order, on which page, and
the summary of them per currency.

Works on ``ListRow``s (the few figures per account the detectors keep beside each state, made
by the same code as ``/v1/accounts``) and the firing alert episodes; pure functions, so the
page and its tests share them. Money is summed per currency only, as Decimal; nothing is ever
added across currencies.

Usage::

    query = ListQuery(q="shop", currency="USD", sort="runway", page=2)
    selected = select(rows, query)                  # filtered and ordered
    page = paginate(selected, query)                # the rows of query.page
    summary = summarize(selected, firing_episodes)  # one CurrencySummary per currency
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from service.detect.list_row import ListRow
from service.http.alert_history import AlertEpisode

__all__ = [
    "CurrencySummary",
    "ListQuery",
    "Page",
    "paginate",
    "select",
    "summarize",
]

Sort = Literal["name", "runway", "expiry", "forfeit"]
PER_PAGE = 50
_ZERO = Decimal(0)


class ListQuery(BaseModel):
    """The list page's GET form: every field optional, so a bare ``/`` lists everything."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    q: str = Field(default="", max_length=200)
    bc: str = Field(default="", max_length=64)
    currency: str = Field(default="", max_length=3)
    alerts: bool = False
    sort: Sort = "name"
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=PER_PAGE, ge=1, le=500)

    def link(self, **changes: object) -> str:
        """``?...`` for this query with ``changes``, leaving out defaults (links keep it)."""
        values = self.model_dump() | changes
        defaults = ListQuery().model_dump()
        kept = {k: v for k, v in values.items() if v != defaults[k]}
        kept = {k: ("1" if v is True else v) for k, v in kept.items()}
        return "?" + urlencode(kept) if kept else "?"


def _matches(row: ListRow, query: ListQuery) -> bool:
    needle = query.q.strip().lower()
    if needle and not any(
        needle in text.lower() for text in (row.advertiser_name, row.advertiser_id, row.bc_id)
    ):
        return False
    if query.bc and row.bc_id != query.bc:
        return False
    if query.currency and row.currency != query.currency.upper():
        return False
    return not (query.alerts and not row.alerts)


def select(rows: Iterable[ListRow], query: ListQuery) -> list[ListRow]:
    """The accounts the query selects, in its order (name, then id, breaks ties)."""
    chosen = sorted(
        (v for v in rows if _matches(v, query)),
        key=lambda v: (v.advertiser_name.lower(), v.advertiser_id),
    )
    if query.sort == "runway":
        chosen.sort(key=lambda v: _soonest(v.runs_out_at))
    elif query.sort == "expiry":
        chosen.sort(key=lambda v: _soonest(v.next_expiry_at))
    elif query.sort == "forfeit":
        chosen.sort(key=lambda v: v.projected_forfeit, reverse=True)
    return chosen


def _soonest(at: datetime | None) -> tuple[int, datetime | None]:
    return (0, at) if at is not None else (1, None)


@dataclass(frozen=True)
class Page:
    rows: list[ListRow]
    number: int
    pages: int
    total: int
    # 1-based position of the first row shown (0 when there is none).
    first: int

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def paginate(selected: Sequence[ListRow], query: ListQuery) -> Page:
    """The rows of the query's page; a page past the end shows the last one."""
    pages = max((len(selected) + query.per_page - 1) // query.per_page, 1)
    number = min(query.page, pages)
    start = (number - 1) * query.per_page
    rows = list(selected[start : start + query.per_page])
    return Page(rows, number, pages, len(selected), start + 1 if rows else 0)


@dataclass
class CurrencySummary:
    """The summary of the selected accounts in one currency."""

    currency: str
    accounts: int = 0
    credit_left: Decimal = _ZERO
    burn_per_day: Decimal = _ZERO
    out_of_credit: int = 0
    frozen: Decimal = _ZERO
    expiring_soon: Decimal = _ZERO
    forfeit_soon: Decimal = _ZERO
    alerts: Counter[str] = field(default_factory=Counter)

    def add(self, row: ListRow) -> None:
        self.accounts += 1
        self.credit_left += row.valid_grant
        self.burn_per_day += row.burn_per_day or _ZERO
        self.out_of_credit += row.valid_grant <= 0
        self.frozen += row.frozen_grant
        # Both within 7 days of the account's newest observation (detect/list_row.py).
        self.expiring_soon += row.expiring_soon
        self.forfeit_soon += row.forfeit_soon


def summarize(selected: Iterable[ListRow], firing: Iterable[AlertEpisode]) -> list[CurrencySummary]:
    """One summary per currency of the selected accounts, by currency code; alerts count
    the firing episodes of those accounts, by severity."""
    summaries: dict[str, CurrencySummary] = {}
    currency_of: dict[str, str] = {}
    for row in selected:
        summary = summaries.get(row.currency)
        if summary is None:
            summary = summaries[row.currency] = CurrencySummary(row.currency)
        summary.add(row)
        currency_of[row.advertiser_id] = row.currency
    for episode in firing:
        currency = currency_of.get(episode.advertiser_id)
        if currency is not None and episode.status == "firing":
            summaries[currency].alerts[episode.severity] += 1
    return [summaries[c] for c in sorted(summaries)]
