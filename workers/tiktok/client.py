"""The TikTok Business API's endpoints that creditwatch reads, on an ``ApiTransport``
(``workers.tiktok.transport``: budget, retries, envelope, token hygiene).

Each method asks its endpoint, pages through it, and returns the raw rows (not validated:
the pollers do that per row, so that one bad account does not hide the others); rows that
are not even objects are counted and dropped.

Usage::

    budget = ApiBudget.from_settings(settings.tiktok)   # one per developer app, shared
    async with TikTokClient(settings.tiktok, budget=budget) as api:
        try:
            rows = await api.advertiser_balances("7001")     # raw dict rows, all pages
            bc = await api.bc_balance("7001")
        except AuthError:
            ...                                               # token revoked: alert ops
        except TransientError:                                # RateLimited included
            ...                                               # try again next cycle

Tests pass ``transport=httpx.MockTransport(handler)``, a no-op ``sleep`` and a fake-clock budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from typing import Any, Self, Unpack

import structlog

from config.settings import TikTokSettings
from workers.api_budget import ApiBudget
from workers.contract import zones
from workers.metrics import ACCOUNTS_REJECTED
from workers.tiktok.errors import BadRequest, MalformedReply, PermissionDenied, json_kind
from workers.tiktok.transport import ApiTransport, TransportOptions

__all__ = [
    "ADVERTISER_BALANCE_PATH",
    "BC_BALANCE_PATH",
    "BC_COST_PATH",
    "BC_TRANSACTION_PATH",
    "MAX_PAGES",
    "REPORT_PATH",
    "TikTokClient",
]

log = structlog.get_logger(__name__)

ADVERTISER_BALANCE_PATH = "/advertiser/balance/get/"
BC_BALANCE_PATH = "/bc/balance/get/"
BC_COST_PATH = "/bc/account/cost/get/"
BC_TRANSACTION_PATH = "/bc/account/transaction/get/"
REPORT_PATH = "/report/integrated/get/"
REPORT_PAGE_SIZE = 1000
PROMOTION_ISSUED, PROMOTION_EXPIRED = "PROMOTION_ISSUED", "PROMOTION_EXPIRED"
SHARED_BY_OTHER_BC = "SHARED_BY_OTHER_BUSINESS_CENTER"

# Stop paging after this many pages even if page_info says more (50 000 accounts at 50/page).
MAX_PAGES = 1000


class TikTokClient:
    """Async TikTok Business API client; use as ``async with`` or call ``aclose()``."""

    def __init__(self, settings: TikTokSettings, **options: Unpack[TransportOptions]) -> None:
        self._settings = settings
        self._api = ApiTransport(settings, **options)

    @property
    def budget(self) -> ApiBudget:
        return self._api.budget

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()

    def __repr__(self) -> str:
        return f"TikTokClient(base_url={self._settings.base_url!r}, budget={self.budget!r})"

    async def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET ``base_url + path``; return the envelope's ``data`` object when ``code == 0``,
        else raise a ``TikTokError`` subclass (see ``workers.tiktok.transport``)."""
        return await self._api.get(path, params)

    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]:
        """Every ad account of a Business Center with its balances: the raw rows, all pages.

        Rows are not validated here (the poller does it per row, so that one bad account
        does not hide the others); rows that are not even objects are counted and dropped.
        """
        return [row async for rows in self.advertiser_balance_pages(bc_id) for row in rows]

    async def advertiser_balance_pages(self, bc_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of ``advertiser_balances`` page by page, each as soon as it is read, so
        that ``reply_time()`` after a page is that page's time (a sweep stretched out by the
        scheduler must not stamp its first page with the time of its last)."""
        page = 1
        while True:
            # No ``fields``: read literally, a fields list returns only the id and the listed
            # fields (no currency, no name); the default reply has all the detectors need.
            data = await self.get(
                ADVERTISER_BALANCE_PATH,
                {"bc_id": bc_id, "page": page, "page_size": self._settings.page_size},
            )
            items = _list_field(data, "advertiser_account_list", ADVERTISER_BALANCE_PATH)
            total_page = _total_page(data, ADVERTISER_BALANCE_PATH)
            yield self._dict_rows(
                items,
                source="advertiser_balance",
                endpoint=ADVERTISER_BALANCE_PATH,
                bc_id=bc_id,
                page=page,
            )
            if page >= total_page or not items:
                return
            if page >= MAX_PAGES:
                log.warning(
                    "api.paging_truncated",
                    endpoint=ADVERTISER_BALANCE_PATH,
                    bc_id=bc_id,
                    pages_read=page,
                    total_page=total_page,
                )
                return
            page += 1

    async def advertiser_balance(self, bc_id: str, advertiser_id: str) -> list[dict[str, Any]]:
        """One ad account's row of ``/advertiser/balance/get/`` (``filtering.keyword`` = its
        id, ``page_size`` 1): the cheapest look at a single balance. The keyword also matches
        names, so the caller keeps the row whose id is the one asked for."""
        data = await self.get(
            ADVERTISER_BALANCE_PATH,
            {
                "bc_id": bc_id,
                "filtering": {"keyword": advertiser_id},
                "page": 1,
                "page_size": 1,
            },
        )
        items = _list_field(data, "advertiser_account_list", ADVERTISER_BALANCE_PATH)
        return self._dict_rows(
            items,
            source="advertiser_balance",
            endpoint=ADVERTISER_BALANCE_PATH,
            bc_id=bc_id,
            page=1,
        )

    async def bc_balance(self, bc_id: str) -> dict[str, Any]:
        """The Business Center's own balance (``data`` of ``/bc/balance/get/``)."""
        return await self.get(BC_BALANCE_PATH, {"bc_id": bc_id})

    async def _all_pages(
        self, path: str, params: Mapping[str, Any], list_name: str, page_size: int, **context: Any
    ) -> list[dict[str, Any]]:
        """Every row of a paged list endpoint (rows that are not objects are counted, dropped)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            data = await self.get(path, {**params, "page": page, "page_size": page_size})
            items = _list_field(data, list_name, path)
            total_page = _total_page(data, path)
            rows.extend(
                self._dict_rows(items, source=list_name, endpoint=path, page=page, **context)
            )
            if page >= total_page or not items:
                return rows
            if page >= MAX_PAGES:
                log.warning("api.paging_truncated", endpoint=path, pages_read=page, **context)
                return rows
            page += 1

    async def pages(
        self, path: str, params: Mapping[str, Any], list_name: str, page_size: int
    ) -> list[dict[str, Any]]:
        """Every row of a paged list endpoint that has no method here (``/bc/get/``)."""
        return await self._all_pages(path, params, list_name, page_size)

    async def account_costs(self, bc_id: str, day: date) -> list[dict[str, Any]]:
        """``cost_list`` rows of ``/bc/account/cost/get/`` for one UTC day: spend per account."""
        filtering = {"start_date": day.isoformat(), "end_date": day.isoformat()}
        return await self._all_pages(
            BC_COST_PATH,
            {"bc_id": bc_id, "filtering": filtering},
            "cost_list",
            self._settings.page_size,
            bc_id=bc_id,
        )

    async def credit_transactions(
        self, bc_id: str, start: datetime, end: datetime, *, zone: str = "UTC"
    ) -> list[dict[str, Any]]:
        """``PROMOTION_ISSUED`` / ``PROMOTION_EXPIRED`` rows of ``/bc/account/transaction/get/``.

        ``start`` and ``end`` are sent as ``YYYY-MM-DD HH:MM:SS`` on the wall clock of ``zone``
        (the API reads them in the account's or the BC's zone, not UTC). Accounts the BC owns
        are read first; then accounts shared in from other BCs, which need their own query
        (``owner_of_account``): a 40001/40002 on that one (no Admin access, or too many shared
        accounts) is logged and leaves the owned rows as they are.
        """
        filtering = {
            "transaction_types": [PROMOTION_ISSUED, PROMOTION_EXPIRED],
            "start_time": zones.wall_time(start, zone),
            "end_time": zones.wall_time(end, zone),
        }
        owned = await self._transactions(bc_id, filtering)
        try:
            shared = await self._transactions(
                bc_id, {**filtering, "owner_of_account": [SHARED_BY_OTHER_BC]}
            )
        except (PermissionDenied, BadRequest) as error:
            log.info(
                "api.shared_transactions_unavailable",
                endpoint=BC_TRANSACTION_PATH,
                bc_id=bc_id,
                code=error.code,
            )
            return owned
        seen = {row.get("transaction_id") for row in owned}
        return owned + [row for row in shared if row.get("transaction_id") not in seen]

    async def _transactions(self, bc_id: str, filtering: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._all_pages(
            BC_TRANSACTION_PATH,
            {"bc_id": bc_id, "transaction_level": "ADVERTISER", "filtering": filtering},
            "transaction_list",
            self._settings.page_size,
            bc_id=bc_id,
        )

    async def report_spend(
        self, advertiser_id: str, start: date, end: date, *, by_campaign: bool = False
    ) -> list[dict[str, Any]]:
        """Daily spend from ``/report/integrated/get/``; dates are the account's own.

        ``cash_spend`` / ``voucher_spend`` exist only at advertiser level by day, so a
        campaign breakdown asks for ``spend`` alone. Metric values come back as strings.
        """
        if by_campaign:
            level, key, metrics = "AUCTION_CAMPAIGN", "campaign_id", ["spend"]
        else:
            level, key, metrics = (
                "AUCTION_ADVERTISER",
                "advertiser_id",
                ["spend", "cash_spend", "voucher_spend"],
            )
        return await self._all_pages(
            REPORT_PATH,
            {
                "advertiser_id": advertiser_id,
                "report_type": "BASIC",
                "service_type": "AUCTION",
                "data_level": level,
                "dimensions": [key, "stat_time_day"],
                "metrics": metrics,
                "start_date": start.isoformat(),
                "end_date": end.isoformat(),
            },
            "list",
            REPORT_PAGE_SIZE,
            advertiser_id=advertiser_id,
        )

    @staticmethod
    def _dict_rows(
        items: list[Any], *, source: str, endpoint: str, **context: Any
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if isinstance(item, dict):
                rows.append(item)
                continue
            ACCOUNTS_REJECTED.labels(source=source).inc()
            log.warning(
                "api.row_rejected",
                endpoint=endpoint,
                source=source,
                index=index,
                row_type=type(item).__name__,
                **context,
            )
        return rows


def _list_field(data: dict[str, Any], name: str, endpoint: str) -> list[Any]:
    items = data.get(name)
    if not isinstance(items, list):
        what = "missing" if name not in data else json_kind(items)
        raise MalformedReply(f"'data.{name}' is {what}, not an array", endpoint=endpoint)
    return items


def _total_page(data: dict[str, Any], endpoint: str) -> int:
    page_info = data.get("page_info")
    if not isinstance(page_info, dict):
        what = "missing" if "page_info" not in data else json_kind(page_info)
        raise MalformedReply(f"'data.page_info' is {what}, not an object", endpoint=endpoint)
    total_page = page_info.get("total_page")
    if not isinstance(total_page, int) or isinstance(total_page, bool) or total_page < 0:
        raise MalformedReply(
            "'data.page_info.total_page' is not a non-negative integer", endpoint=endpoint
        )
    return total_page
