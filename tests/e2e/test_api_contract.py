"""Contract tests: TikTok's documented replies, through the real client, pollers and parsers.

Each endpoint's reply fixture (``tests/fixtures/tiktok/``) is written from the reference's
field tables and example replies: ids as strings and as numbers (v1.2-era), money as JSON
integers, decimals and strings, ``advertiser_status`` null, time zones as ``UTC±HH:MM``,
``Etc/GMT±N`` and IANA names. A real local HTTP server serves them; each fixture has a row
that must be rejected while the rest of its page publishes. The balance poll runs against
real Redis so the rejected row is seen in the dead-letter stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from config.settings import PollSettings, Settings, TikTokSettings
from service.roles import poller_role
from tests.support.balance_poll import poll_balances_once
from tests.support.end_to_end import sandbox_api
from tests.support.fixture_api import TOKEN, FixtureApi, error, fixture
from tests.support.pipeline import ListPublisher
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers.bc_balance_poller import BcBalancePoller
from workers.business_centers import learn_zones
from workers.contract import wire, zones
from workers.contract.snapshots import (
    AccountBalanceSnapshot,
    BcBalanceSnapshot,
    CreditTransactionSnapshot,
    DailySpendSnapshot,
    parse_snapshot,
)
from workers.spend_poller import CostPoller, ReportPoller
from workers.tiktok import TikTokClient
from workers.transaction_poller import TransactionPoller

BC = "7000000000000000001"
SHOP, NULL_STATUS, OLD, PORTFOLIO = (f"701234567890123456{n}" for n in (1, 2, 3, 4))
SEEN_AT = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
TRANSACTIONS = "/bc/account/transaction/get/"


class Rejected:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def __call__(self, **fields: Any) -> None:
        self.entries.append(fields)

    def ids(self) -> list[str]:
        return [e["entry_id"] for e in self.entries]


@pytest.fixture
async def api() -> AsyncIterator[FixtureApi]:
    async with FixtureApi() as server:
        yield server


@pytest.fixture
async def client(api: FixtureApi) -> AsyncIterator[TikTokClient]:
    settings = TikTokSettings(
        base_url=api.base_url,
        access_token=SecretStr(TOKEN),
        max_retries=0,
        qps=1000,
        qpm=60_000,
    )
    async with TikTokClient(settings) as tiktok:
        yield tiktok


async def test_balances_as_documented_publish_and_the_bad_row_is_dead_lettered(
    api: FixtureApi, client: TikTokClient, settings: Settings, redis_client: Redis
) -> None:
    result = await poll_balances_once(client, BC, settings, redis_client, seen_at=SEEN_AT)
    assert result is not None
    assert (result.published, result.rejected) == (5, 1)  # 4 accounts + the source status
    # Asked without `fields`: right under the literal and the lenient reading alike.
    [params] = api.requests_to("/advertiser/balance/get/")
    assert params == {"bc_id": BC, "page": "1", "page_size": "50"}

    published = [
        parse_snapshot(body(f)) for f in await entries(redis_client, settings.streams.snapshots)
    ]
    by_id = {s.advertiser_id: s for s in published if isinstance(s, AccountBalanceSnapshot)}
    assert list(by_id) == [SHOP, NULL_STATUS, OLD, PORTFOLIO]

    shop = by_id[SHOP]
    assert shop.balances.grant_balance == Decimal(150)
    assert shop.balances.valid_grant_balance == Decimal("100.5")
    # The default reply has no frozen figure for ad credit: grant - valid grant.
    assert shop.balances.frozen_grant_balance == Decimal("49.5")
    assert shop.balances.valid_cash_balance == Decimal(1000)
    assert (shop.timezone, shop.balance_reminder, shop.cash_is_shared) == ("Etc/GMT-8", True, False)

    null_status = by_id[NULL_STATUS]
    assert null_status.advertiser_status == ""
    assert null_status.balances.valid_grant_balance == Decimal("10.10")
    assert null_status.balances.frozen_grant_balance == 0
    assert null_status.currency == "EUR"
    assert null_status.balance_reminder is False

    old = by_id[OLD]  # a v1.2-era reply: the id as a JSON number
    assert old.balances.valid_grant_balance == Decimal("0.07")
    assert old.balance_reminder is None

    portfolio = by_id[PORTFOLIO]
    assert portfolio.cash_is_shared
    assert portfolio.payment_portfolio_id == "7300000000000000001"
    assert portfolio.balances.valid_cash_balance == Decimal(5000)

    [dead] = await entries(redis_client, settings.streams.deadletter)
    assert dead[b"entry_id"] == f"{BC}:7012345678901234565".encode()
    assert b"currency" in dead[b"error"]
    assert wire.loads(dead[b"payload"])["advertiser_name"] == "Broken Row"


async def test_bc_balance_without_a_frozen_grant_figure(client: TikTokClient) -> None:
    publisher, rejected = ListPublisher(), Rejected()
    poller = BcBalancePoller(client, publisher, reject=rejected, clock=lambda: SEEN_AT)
    await poller.poll(BC)
    [snapshot] = [s for s in publisher.snapshots if isinstance(s, BcBalanceSnapshot)]
    assert snapshot.currency == "USD"
    assert snapshot.balances.grant_balance == Decimal("500.75")
    assert snapshot.balances.frozen_grant_balance == Decimal(100)
    assert snapshot.balances.valid_cash_balance == Decimal(2000)
    assert rejected.entries == []


async def test_costs_with_numbers_strings_and_a_null_amount(
    api: FixtureApi, client: TikTokClient
) -> None:
    publisher, rejected = ListPublisher(), Rejected()
    poller = CostPoller(client, publisher, reject=rejected, lookback_days=1, clock=lambda: SEEN_AT)
    await poller.poll(BC)
    spend = [s for s in publisher.snapshots if isinstance(s, DailySpendSnapshot)]
    assert [(s.advertiser_id, s.cash_amount, s.grant_amount, s.total) for s in spend] == [
        (SHOP, Decimal(100), Decimal("20.5"), Decimal("120.5")),
        (OLD, Decimal("7.00"), Decimal("0.00"), Decimal("7.00")),
    ]
    [day] = {s.day for s in spend}
    [rejected_id] = rejected.ids()
    assert rejected_id == f"{BC}:7012345678901234565:{day}"
    [params] = api.requests_to("/bc/account/cost/get/")
    # Dates are UTC days, both ends given.
    assert params["filtering"] == {"start_date": day.isoformat(), "end_date": day.isoformat()}


async def test_transactions_in_offset_zones_are_read_as_their_instants(
    api: FixtureApi, client: TikTokClient
) -> None:
    publisher, rejected = ListPublisher(), Rejected()
    poller = TransactionPoller(
        client,
        publisher,
        reject=rejected,
        lookback_days=7,
        clock=lambda: SEEN_AT,
        bc_zones={BC: "UTC+08:00"},
    )
    await poller.poll(BC)
    credit = [s for s in publisher.snapshots if isinstance(s, CreditTransactionSnapshot)]
    # The shared-accounts query got the same rows: each transaction is published once.
    assert [
        (s.transaction_id, s.advertiser_id, s.transaction_type, s.amount, s.create_time)
        for s in credit
    ] == [
        (
            "7400000000000000001",
            SHOP,
            "PROMOTION_ISSUED",
            Decimal(300),
            datetime(2026, 11, 1, 0, 0, tzinfo=UTC),  # 08:00 at UTC+08:00
        ),
        (
            "7400000000000000002",
            OLD,
            "PROMOTION_EXPIRED",
            Decimal("25.5"),  # listed as -25.5, NEGATIVE: the size is what expired
            datetime(2026, 11, 3, 0, 0, tzinfo=UTC),  # 18:30 at UTC-05:30
        ),
        (
            "7400000000000000003",
            NULL_STATUS,
            "PROMOTION_ISSUED",
            Decimal("40.25"),
            datetime(2026, 11, 3, 0, 0, tzinfo=UTC),  # 01:00 in Etc/GMT-1 (UTC+1)
        ),
    ]
    assert rejected.ids() == [f"{BC}:7400000000000000004"]
    assert "create_time" in rejected.entries[0]["error"]

    owned, shared = api.requests_to(TRANSACTIONS)
    assert "owner_of_account" not in owned["filtering"]
    assert shared["filtering"]["owner_of_account"] == ["SHARED_BY_OTHER_BUSINESS_CENTER"]
    window = owned["filtering"]
    assert window["transaction_types"] == ["PROMOTION_ISSUED", "PROMOTION_EXPIRED"]
    start = zones.local_time(window["start_time"], "UTC+08:00")
    end = zones.local_time(window["end_time"], "UTC+08:00")
    # On the BC's wall clock, from a day before the lookback to a day past the API's now.
    assert end - start == timedelta(days=7 + 1)
    assert abs(end - (datetime.now(UTC) + timedelta(days=1))) < timedelta(minutes=10)


async def test_no_access_to_shared_accounts_keeps_the_owned_rows(
    api: FixtureApi, client: TikTokClient
) -> None:
    def owned_only(params: dict[str, Any]) -> dict[str, Any]:
        if params["filtering"].get("owner_of_account"):
            return error(40001, "No permission to operate the shared accounts.")
        return fixture(TRANSACTIONS)

    api.answer[TRANSACTIONS] = owned_only
    publisher, rejected = ListPublisher(), Rejected()
    poller = TransactionPoller(client, publisher, reject=rejected, clock=lambda: SEEN_AT)
    result = await poller.poll(BC)
    assert result is not None
    credit = [s for s in publisher.snapshots if isinstance(s, CreditTransactionSnapshot)]
    assert len(credit) == 3
    assert len(api.requests_to(TRANSACTIONS)) == 2


async def test_report_asks_cash_and_voucher_spend_by_day_at_advertiser_level(
    api: FixtureApi, client: TikTokClient
) -> None:
    def one_account(params: dict[str, Any]) -> dict[str, Any]:
        if params["advertiser_id"] == SHOP:
            return fixture("/report/integrated/get/")
        page = {"page": 1, "page_size": 1000, "total_number": 0, "total_page": 0}
        return {
            "code": 0,
            "message": "OK",
            "request_id": "r",
            "data": {"list": [], "page_info": page},
        }

    api.answer["/report/integrated/get/"] = one_account
    publisher, rejected = ListPublisher(), Rejected()
    poller = ReportPoller(
        client, publisher, reject=rejected, lookback_days=3, clock=lambda: SEEN_AT
    )
    await poller.poll(BC)
    spend = [s for s in publisher.snapshots if isinstance(s, DailySpendSnapshot)]
    assert [(s.advertiser_id, s.day, s.cash_amount, s.grant_amount, s.total) for s in spend] == [
        (SHOP, date(2026, 11, 1), Decimal("10.00"), Decimal("4.68"), Decimal("14.68")),
        (SHOP, date(2026, 11, 2), Decimal("0.00"), Decimal("0.00"), Decimal("0.00")),
    ]
    assert {s.currency for s in spend} == {"USD"}
    assert rejected.ids() == [f"{BC}:{SHOP}:2026-11-03"]
    reports = api.requests_to("/report/integrated/get/")
    # One per account the balance listing could read (the broken row is not one of them).
    assert sorted(r["advertiser_id"] for r in reports) == sorted(
        [SHOP, NULL_STATUS, OLD, PORTFOLIO]
    )
    for request in reports:
        assert request["data_level"] == "AUCTION_ADVERTISER"
        assert request["dimensions"] == ["advertiser_id", "stat_time_day"]
        assert request["metrics"] == ["spend", "cash_spend", "voucher_spend"]
        assert date.fromisoformat(request["end_date"]) - date.fromisoformat(
            request["start_date"]
        ) == timedelta(days=2)


async def test_a_campaign_breakdown_does_not_ask_for_cash_or_voucher_spend(
    api: FixtureApi, client: TikTokClient
) -> None:
    await client.report_spend(SHOP, date(2026, 11, 1), date(2026, 11, 2), by_campaign=True)
    [request] = api.requests_to("/report/integrated/get/")
    assert request["data_level"] == "AUCTION_CAMPAIGN"
    assert request["metrics"] == ["spend"]


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("UTC+08:00", timedelta(hours=8)),
        ("UTC-05:30", timedelta(hours=-5, minutes=-30)),
        ("UTC+00:00", timedelta(0)),
        ("Etc/GMT-8", timedelta(hours=8)),
        ("Etc/GMT+5", timedelta(hours=-5)),
        ("Asia/Shanghai", timedelta(hours=8)),
        ("UTC", timedelta(0)),
    ],
)
def test_every_spelling_of_a_zone_is_read(name: str, offset: timedelta) -> None:
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert at.astimezone(zones.zone(name)).utcoffset() == offset
    assert zones.local_time(zones.wall_time(at, name), name) == at


@pytest.mark.parametrize("name", ["UTC+15:00", "UTC+08:75", "Mars/Olympus", "", "UTC+8:00:00"])
def test_an_unknown_zone_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        zones.zone(name)


def test_auxiliary_fields_in_an_unknown_form_cost_no_balances() -> None:
    row = {
        **fixture("/advertiser/balance/get/")["data"]["advertiser_account_list"][0],
        "balance_reminder": "yes",
        "payment_portfolio_type": "SHARED_LATER_KIND",
    }
    snapshot = AccountBalanceSnapshot.from_api(row, bc_id=BC, observed_at=SEEN_AT)
    assert snapshot.balance_reminder is None
    assert not snapshot.cash_is_shared
    assert snapshot.balances.valid_grant_balance == Decimal("100.5")


async def test_bc_zones_are_learned_from_bc_get_and_an_unreadable_one_is_left_out(
    client: TikTokClient,
) -> None:
    learned: dict[str, str] = {}
    assert await learn_zones(client, learned) == 2
    # Ids as strings and as numbers; "Mars/Olympus_Mons" is no zone: that BC stays on UTC.
    assert learned == {BC: "UTC+08:00", "7000000000000000002": "Etc/GMT-1"}


@pytest.mark.parametrize("bc_ids", [[BC], "discover"], ids=["listed", "discovered"])
async def test_the_poller_role_writes_transaction_times_on_the_bcs_learned_clock(
    api: FixtureApi, settings: Settings, bc_ids: list[str] | str
) -> None:
    settings = settings.model_copy(
        update={
            "tiktok": sandbox_api(api.base_url, TOKEN, bc_ids, qps=50),
            "poll": PollSettings(
                balance_interval_s=600,
                transaction_interval_s=0.5,
                spend_interval_s=600,
                bc_balance_interval_s=600,
                risk_polls=False,
            ),
        }
    )

    def after_the_zone_was_learned() -> list[dict[str, Any]]:
        # A transaction poll made once /bc/get/ had answered (the one right after its request
        # may still have been on its way): the second transaction request after it.
        paths = [r.path for r in api.requests]
        if "/bc/get/" not in paths:
            return []
        later = [
            r
            for r in api.requests[paths.index("/bc/get/") :]
            if r.path == TRANSACTIONS and r.params.get("bc_id") == BC
        ]
        return [r.params for r in later[2:]]

    async def polled_after_learning() -> bool:
        return bool(after_the_zone_was_learned())

    async with poller_role(settings, settings.redis_url or ""):
        await eventually(polled_after_learning, within=60)
    # The window ends a day past the API's now; written at UTC+08:00 its wall time is 8 h
    # ahead of the same instant in UTC (the fixture server's clock is this machine's).
    end_text = after_the_zone_was_learned()[0]["filtering"]["end_time"]
    as_utc_wall = datetime.strptime(end_text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    ahead = as_utc_wall - (datetime.now(UTC) + timedelta(days=1))
    assert timedelta(hours=7, minutes=50) < ahead < timedelta(hours=8, minutes=10), end_text
    # A discovering connection takes the zones from its own listing: one /bc/get/, not two.
    assert [r.path for r in api.requests].count("/bc/get/") == 1
