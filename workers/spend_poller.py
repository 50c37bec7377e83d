"""Spend pollers: daily spend per advertiser, split cash vs ad credit, from two sources.

``CostPoller`` reads ``/bc/account/cost/get/`` one UTC day at a time over the trailing
``poll.spend_lookback_days`` (figures lag and are revised, so every poll re-reads them);
``ReportPoller`` reads ``/report/integrated/get/`` (``cash_spend`` / ``voucher_spend``, metric
values as strings) per advertiser, in the account's own dates. Both publish one
``daily_spend`` snapshot per (advertiser, day); the detectors keep the newest figure of each
day, replacing, never adding.

Usage::

    CostPoller(client, publisher, reject=dead_letters.put, lookback_days=7)
    ReportPoller(client, publisher, reject=dead_letters.put, lookback_days=7)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from workers import priorities
from workers.contract import zones
from workers.contract.snapshots import DailySpendSnapshot, Snapshot
from workers.poller import WindowedPoller
from workers.priorities import PacedSweep, Priority
from workers.tiktok import reply_time

__all__ = ["CostPoller", "ReportPoller", "api_now"]


class ServerClock(Protocol):
    async def bc_balance(self, bc_id: str) -> dict[str, Any]: ...


async def api_now(api: ServerClock, bc_id: str) -> datetime:
    """The API's current time (which days are "today" there): one cheap call's ``Date``."""
    await api.bc_balance(bc_id)
    return reply_time()


class CostSource(ServerClock, Protocol):
    async def account_costs(self, bc_id: str, day: date) -> list[dict[str, Any]]: ...


class CostPoller(WindowedPoller[CostSource]):
    """Business-center spend per account and UTC day (``cash_amount`` / ``grant_amount``)."""

    source = "bc_cost"
    priority = Priority.COST

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        today = (await api_now(self._api, bc_id)).astimezone(UTC).date()
        snapshots: list[Snapshot] = []
        rejected = 0
        for back in range(self._lookback_days):
            day = today - timedelta(days=back)
            rows = await self._api.account_costs(bc_id, day)
            observed_at = self._clock()
            valid, bad = await self.validated(
                rows,
                lambda row, day=day, at=observed_at: DailySpendSnapshot.from_cost_row(  # type: ignore[misc]
                    row, bc_id=bc_id, day=day, observed_at=at
                ),
                lambda row, day=day: f"{row.get('advertiser_id', '?')}:{day}",  # type: ignore[misc]
                bc_id=bc_id,
            )
            snapshots.extend(valid)
            rejected += bad
            if back == 0:
                _expect_days(self._lookback_days)
        return snapshots, rejected


def _expect_days(days: int) -> None:
    """After the first day of a cost sweep: every day takes as many requests as it did."""
    sweep = priorities.current()
    if isinstance(sweep, PacedSweep) and sweep.expected is None:
        first_day = max(1, sweep.grants - 1)  # less the one call for the API's date
        sweep.expect(1 + days * first_day)


class ReportSource(Protocol):
    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]: ...

    async def report_spend(
        self, advertiser_id: str, start: date, end: date, *, by_campaign: bool = False
    ) -> list[dict[str, Any]]: ...


def _local_today(now: datetime, zone: Any) -> date:
    try:
        return now.astimezone(zones.zone(str(zone or "UTC"))).date()
    except ValueError:
        return now.astimezone(UTC).date()


class ReportPoller(WindowedPoller[ReportSource]):
    """Advertiser-level report spend by day, for every ad account of a business center.

    The report has no currency or name, so the accounts (and those) come from the balance
    listing first: one extra paged call per poll.
    """

    source = "report"
    priority = Priority.REPORTS

    async def collect(self, bc_id: str) -> tuple[list[Snapshot], int]:
        accounts = await self._api.advertiser_balances(bc_id)
        sweep = priorities.current()
        if isinstance(sweep, PacedSweep) and sweep.expected is None:
            # One request per account from here on: the sweep can now keep its pace.
            sweep.expect(sweep.grants + len(accounts))
        now = reply_time()
        snapshots: list[Snapshot] = []
        rejected = 0
        for account in accounts:
            advertiser_id = _id_text(account.get("advertiser_id"))
            currency = account.get("currency")
            if advertiser_id is None or not isinstance(currency, str):
                continue  # the balance poller dead-letters such rows already
            end = _local_today(now, account.get("timezone"))
            start = end - timedelta(days=self._lookback_days - 1)
            rows = await self._api.report_spend(advertiser_id, start, end)
            observed_at = self._clock()
            name = str(account.get("advertiser_name") or "")
            valid, bad = await self.validated(
                rows,
                lambda row, at=observed_at, cur=currency, nm=name: (  # type: ignore[misc]
                    DailySpendSnapshot.from_report_row(
                        row, bc_id=bc_id, advertiser_name=nm, currency=cur, observed_at=at
                    )
                ),
                lambda row, adv=advertiser_id: f"{adv}:{_row_day(row)}",  # type: ignore[misc]
                bc_id=bc_id,
            )
            snapshots.extend(valid)
            rejected += bad
        return snapshots, rejected


def _id_text(value: Any) -> str | None:
    """An id as text: strings in v1.3 replies, numbers in v1.2-era ones."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _row_day(row: dict[str, Any]) -> str:
    dimensions = row.get("dimensions")
    return str(dimensions.get("stat_time_day", "?"))[:10] if isinstance(dimensions, dict) else "?"
