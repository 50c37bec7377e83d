"""The sandbox must speak the contract of /work/shared/tiktok-api.md and simulate honestly."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.fake_time import FakeMonotonic
from tests.support.sandbox_asgi import (
    AUTH,
    BC,
    COST,
    DRAIN,
    START,
    STEADY,
    TOKEN,
    TRANSACTIONS,
    advance,
    advertiser,
    api_get,
    asgi_client,
    bc_report,
    scenario,
)
from workers.contract import wire
from workers.sandbox import (
    ADMIN_PREFIX,
    API_PREFIX,
    DEMO_SCENARIO,
    EventAction,
    Faults,
    Sandbox,
    Scenario,
    ScenarioError,
    SimClock,
    Simulation,
    load_scenario,
    parse_scenario,
)

BALANCE_INFO_FIELDS = {
    "account_balance",
    "frozen_balance",
    "valid_account_balance",
    "tax",
    "cash_balance",
    "frozen_cash_balance",
    "cash_tax",
    "valid_cash_balance",
    "grant_balance",
    "valid_grant_balance",
    "frozen_grant_balance",
    "credit_balance",
    "valid_credit_balance",
    "frozen_credit_balance",
}
IDENTITY_FIELDS = {
    "advertiser_id",
    "advertiser_name",
    "advertiser_status",
    "advertiser_type",
    "currency",
    "timezone",
}
FLAT_FIELDS = {
    "account_balance",
    "valid_account_balance",
    "frozen_balance",
    "tax",
    "cash_balance",
    "valid_cash_balance",
    "grant_balance",
    "valid_grant_balance",
}
# In every reply, with or without `fields` (budget_remaining only on request).
DEFAULT_FIELDS = {"balance_reminder", "budget_mode", "budget", "budget_cost"}


def at_hours(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def assert_identities(info: dict[str, Decimal]) -> None:
    assert info["account_balance"] == (
        info["valid_account_balance"] + info["frozen_balance"] + info["tax"]
    )
    assert info["valid_cash_balance"] == info["cash_balance"] - (
        info["frozen_cash_balance"] + info["cash_tax"]
    )
    assert info["valid_grant_balance"] == info["grant_balance"] - info["frozen_grant_balance"]
    assert info["account_balance"] == info["cash_balance"] + info["grant_balance"]
    assert info["frozen_balance"] == info["frozen_cash_balance"] + info["frozen_grant_balance"]
    for name, value in info.items():
        assert value.as_tuple().exponent == -2, name
        assert value >= 0, name


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    sandbox = Sandbox(scenario())
    async with asgi_client(sandbox) as http:
        yield http


# --- scenario ---------------------------------------------------------------------------------


def test_demo_scenario_loads_and_inherits_currency() -> None:
    demo = load_scenario(DEMO_SCENARIO)
    sim = Simulation(demo)
    assert len(demo.business_centers) == 2
    held = sim.account("7100000000003")
    assert held.currency == "EUR"
    assert any(event.action == "freeze_grant" for event in demo.events)


def test_demo_story_timing() -> None:
    """What the demo's narration promises, at speed 3600 (1 real second = 1 simulated hour)."""
    demo = load_scenario(DEMO_SCENARIO)
    assert demo.speed == 3600
    sim = Simulation(demo)
    start_grant = {adv.advertiser_id: adv.grant_balance for _, adv in demo.advertisers()}
    low_at: dict[str, int] = {}
    out_at: dict[str, int] = {}
    for hour in range(0, 121, 2):  # a poll every 2 real seconds
        sim.advance_to(demo.start + timedelta(hours=hour))
        for adv_id, grant in start_grant.items():
            valid = sim.balances(adv_id).valid_grant_balance
            if valid < grant * Decimal("0.2"):
                low_at.setdefault(adv_id, hour)
            if valid == 0:
                out_at.setdefault(adv_id, hour)
    assert low_at["7100000000001"] <= out_at["7100000000001"] <= 60
    assert "7100000000002" not in low_at
    assert low_at.get("7100000000003", 999) > 60
    assert sim.balances("7100000000003").frozen_grant_balance == 0  # released by +96h
    sim.advance_to(demo.start + timedelta(hours=72))
    assert sim.balances("7100000000001").valid_grant_balance > start_grant[DRAIN] * Decimal("0.2")


def test_yaml_money_is_decimal_even_unquoted() -> None:
    text = """
start: 2026-11-01T00:00:00Z
business_centers:
  - bc_id: "1"
    name: B
    advertisers:
      - {advertiser_id: "2", name: A, grant_balance: 0.10, cash_balance: "0.20"}
events:
  - {at: "+1d6h", advertiser_id: "2", action: set_burn_rate, per_hour: 0.3}
"""
    parsed = parse_scenario(text)
    spec = parsed.business_centers[0].advertisers[0]
    assert spec.grant_balance == Decimal("0.10")
    assert spec.cash_balance == Decimal("0.20")
    assert parsed.events[0].per_hour == Decimal("0.3")
    assert parsed.event_time(parsed.events[0]) == START + timedelta(hours=30)


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"start": "2026-11-01T00:00:00"}, "start"),
        (
            {"advertisers": [advertiser("1", cash_balance="lots")]},
            "business_centers[0].advertisers[0].cash_balance",
        ),
        (
            {"advertisers": [advertiser("1", cash_balance="1.001")]},
            "business_centers[0].advertisers[0].cash_balance",
        ),
        (
            {"advertisers": [advertiser("1", timezone="Mars/Olympus")]},
            "business_centers[0].advertisers[0].timezone",
        ),
        ({"events": [{"at": "+1h", "advertiser_id": DRAIN, "action": "grant_topup"}]}, "amount"),
        (
            {"events": [{"at": "+1h", "advertiser_id": "404", "action": "unfreeze_grant"}]},
            "events[0].advertiser_id",
        ),
        (
            {"events": [{"at": "soon", "advertiser_id": DRAIN, "action": "unfreeze_grant"}]},
            "events[0].at",
        ),
        ({"qps_limit": 0}, "qps_limit"),
    ],
)
def test_bad_scenario_names_the_field(patch: dict[str, Any], named: str) -> None:
    advertisers = patch.pop("advertisers", [advertiser(DRAIN)])
    raw: dict[str, Any] = {
        "start": "2026-11-01T00:00:00Z",
        "business_centers": [{"bc_id": BC, "name": "B", "advertisers": advertisers}],
        **patch,
    }
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(json.dumps(raw), source="x.yaml")
    assert named in str(caught.value)
    assert str(caught.value).startswith("x.yaml: ")


def test_missing_scenario_file_is_a_scenario_error(tmp_path: Any) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


# --- clock ------------------------------------------------------------------------------------


def test_clock_scales_real_time_and_advances_when_paused() -> None:
    real = FakeMonotonic(1000.0)
    clock = SimClock(START, speed=3600, monotonic=real)
    real.now += 2
    assert clock.now() == START + timedelta(hours=2)
    clock.set_speed(0)
    real.now += 100
    assert clock.now() == START + timedelta(hours=2)
    clock.advance(1800)
    assert clock.now() == START + timedelta(hours=2, minutes=30)
    clock.set_speed(60)
    real.now += 1
    assert clock.now() == START + timedelta(hours=2, minutes=31)
    with pytest.raises(ValueError):
        clock.advance(-1)


# --- simulation -------------------------------------------------------------------------------


def test_spend_draws_grant_before_cash_and_stops_at_zero() -> None:
    sim = Simulation(scenario())  # DRAIN: grant 10, cash 5, 1 per hour
    sim.advance_to(at_hours(4))
    view = sim.balances(DRAIN)
    assert (view.grant_balance, view.cash_balance) == (Decimal("6.00"), Decimal("5.00"))
    sim.advance_to(at_hours(12))
    view = sim.balances(DRAIN)
    assert (view.grant_balance, view.cash_balance) == (Decimal("0.00"), Decimal("3.00"))
    sim.advance_to(at_hours(100))
    view = sim.balances(DRAIN)
    assert (view.account_balance, view.valid_account_balance) == (Decimal("0.00"), Decimal(0))
    spend = sim.spend_between(DRAIN, START.date(), at_hours(100).date())
    assert (spend.grant_amount, spend.cash_amount) == (Decimal(10), Decimal(5))
    assert sim.balances(STEADY).account_balance == Decimal("300.00")  # burn rate 0


def test_frozen_grant_is_not_spent_and_spend_falls_to_cash() -> None:
    sim = Simulation(
        scenario(
            [
                advertiser(
                    DRAIN,
                    cash_balance="5.00",
                    grant_balance="10.00",
                    frozen_grant_balance="4.00",
                    burn_rate_per_hour="1",
                )
            ]
        )
    )
    sim.advance_to(at_hours(8))
    view = sim.balances(DRAIN)
    assert view.valid_grant_balance == 0
    assert view.frozen_grant_balance == Decimal("4.00")
    assert view.grant_balance == Decimal("4.00")
    assert view.cash_balance == Decimal("3.00")


def _busy_scenario() -> Scenario:
    """Odd rates, frozen cash, tax, events and several UTC midnights: a hard case to poll."""
    return scenario(
        [
            advertiser(
                DRAIN,
                cash_balance="123.45",
                frozen_cash_balance="3.10",
                cash_tax="1.05",
                grant_balance="77.77",
                credit_balance="50.00",
                frozen_credit_balance="10.00",
                burn_rate_per_hour="3.333333",
            ),
            advertiser(
                STEADY, cash_balance="10.00", grant_balance="1.00", burn_rate_per_hour="7.7"
            ),
        ],
        events=[
            {"at": "+5h", "advertiser_id": DRAIN, "action": "freeze_grant", "amount": "20.00"},
            {"at": "+13h", "advertiser_id": DRAIN, "action": "grant_topup", "amount": "40.00"},
            {"at": "+20h", "advertiser_id": DRAIN, "action": "unfreeze_grant"},
            {"at": "+26h", "advertiser_id": DRAIN, "action": "set_burn_rate", "per_hour": "0.7"},
            {"at": "+30h", "advertiser_id": STEADY, "action": "cash_topup", "amount": "9.99"},
            {"at": "+31h", "advertiser_id": DRAIN, "action": "expire_grant", "amount": "5.00"},
        ],
    )


def test_polling_granularity_does_not_change_the_result() -> None:
    end = at_hours(70) + timedelta(microseconds=123_457)
    once = Simulation(_busy_scenario())
    once.advance_to(end)

    polled = Simulation(_busy_scenario())
    dice = random.Random(7)
    moment = START
    for _ in range(1000):
        moment += timedelta(microseconds=dice.randrange(1, 500_000_000))
        polled.advance_to(min(moment, end))
        polled.balances(DRAIN)  # reading must not disturb anything either
    polled.advance_to(end)

    for adv_id in (DRAIN, STEADY):
        assert polled.exact_balances(adv_id) == once.exact_balances(adv_id)
        assert polled.balances(adv_id) == once.balances(adv_id)
        assert polled.daily_spend(adv_id) == once.daily_spend(adv_id)


def test_identities_hold_at_every_poll() -> None:
    sim = Simulation(_busy_scenario())
    for minute in range(0, 72 * 60, 37):
        sim.advance_to(START + timedelta(minutes=minute, seconds=11))
        for adv_id in (DRAIN, STEADY):
            assert_identities(sim.balances(adv_id).as_dict())
        assert_identities(sim.bc_balances(BC).as_dict())


def test_events_apply_exactly_at_their_time() -> None:
    sim = Simulation(_busy_scenario())
    just_before = at_hours(5) - timedelta(microseconds=1)
    sim.advance_to(just_before)
    assert sim.balances(DRAIN).frozen_grant_balance == 0
    sim.advance_to(at_hours(5))
    assert sim.balances(DRAIN).frozen_grant_balance == Decimal("20.00")

    sim.advance_to(at_hours(13) - timedelta(microseconds=1))
    grant_before = sim.exact_balances(DRAIN).grant
    assert sim.transactions() == []
    sim.advance_to(at_hours(13))
    grant_after = sim.exact_balances(DRAIN).grant
    assert abs(grant_after - (grant_before + Decimal("40.00"))) < Decimal("0.00001")  # 1 µs spend
    [issued] = sim.transactions()
    assert issued.transaction_type == "PROMOTION_ISSUED"
    assert issued.amount == Decimal("40.00")
    assert issued.create_time == at_hours(13)

    sim.advance_to(at_hours(20))
    assert sim.balances(DRAIN).frozen_grant_balance == 0  # unfreeze without amount: all

    sim.advance_to(at_hours(27))
    spent = sim.spend_between(DRAIN, START.date(), at_hours(27).date()).amount
    sim.advance_to(at_hours(28))
    later = sim.spend_between(DRAIN, START.date(), at_hours(28).date()).amount
    assert later - spent == Decimal("0.7")  # set_burn_rate took effect at +26h

    sim.advance_to(at_hours(31))
    kinds = [tx.transaction_type for tx in sim.transactions()]
    assert kinds == ["PROMOTION_ISSUED", "ADD_BALANCE", "PROMOTION_EXPIRED"]
    ids = [tx.transaction_id for tx in sim.transactions()]
    assert len(set(ids)) == len(ids)


def test_freeze_is_capped_at_the_valid_grant_and_apply_now_settles_first() -> None:
    sim = Simulation(scenario())  # DRAIN: grant 10 at 1/h
    sim.advance_to(at_hours(3))
    sim.apply_now(EventAction(advertiser_id=DRAIN, action="freeze_grant", amount=Decimal(100)))
    view = sim.balances(DRAIN)
    assert view.frozen_grant_balance == Decimal("7.00")
    assert view.valid_grant_balance == 0
    sim.advance_to(at_hours(4))
    assert sim.balances(DRAIN).cash_balance == Decimal("4.00")  # grant frozen: cash pays


def test_going_back_in_time_is_ignored() -> None:
    sim = Simulation(scenario())
    sim.advance_to(at_hours(5))
    sim.advance_to(at_hours(1))
    assert sim.now == at_hours(5)
    assert sim.balances(DRAIN).grant_balance == Decimal("5.00")


# --- API contract -----------------------------------------------------------------------------


async def test_balance_get_envelope_and_fields(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{API_PREFIX}/advertiser/balance/get/",
        params={"bc_id": BC, "fields": '["balance_info","budget_remaining"]'},
        headers=AUTH,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = wire.loads(response.content)
    assert set(body) == {"code", "message", "request_id", "data"}
    assert body["code"] == 0
    assert body["message"] == "OK"
    assert isinstance(body["request_id"], str) and body["request_id"]
    data = body["data"]
    assert set(data) == {"advertiser_account_list", "page_info"}
    assert data["page_info"] == {"page": 1, "page_size": 10, "total_number": 2, "total_page": 1}
    row = data["advertiser_account_list"][0]
    assert set(row) == IDENTITY_FIELDS | FLAT_FIELDS | DEFAULT_FIELDS | {
        "balance_info",
        "budget_remaining",
    }
    assert set(row["balance_info"]) == BALANCE_INFO_FIELDS
    assert row["advertiser_id"] == DRAIN
    assert row["advertiser_status"] == "SHOW_ACCOUNT_STATUS_APPROVED"
    assert (row["currency"], row["timezone"]) == ("USD", "UTC")
    assert row["budget_mode"] == "UNLIMITED"
    assert_identities(row["balance_info"])
    for name in FLAT_FIELDS:
        assert row[name] == row["balance_info"][name]
    # Money is a JSON number with exactly two decimals, never a string.
    assert re.search(rb'"grant_balance":10\.00[,}]', response.content)
    assert re.search(rb'"cash_balance":5\.00[,}]', response.content)


async def test_balance_get_without_fields_has_no_balance_info(client: httpx.AsyncClient) -> None:
    body = await api_get(client, "/advertiser/balance/get/", bc_id=BC)
    row = body["data"]["advertiser_account_list"][0]
    assert set(row) == IDENTITY_FIELDS | FLAT_FIELDS | DEFAULT_FIELDS
    assert row["balance_reminder"] is False


async def test_literal_fields_reading_returns_the_id_and_the_listed_fields_only() -> None:
    sandbox = Sandbox(scenario(fields_reading="literal"))
    async with asgi_client(sandbox) as http:
        asked = await api_get(
            http, "/advertiser/balance/get/", bc_id=BC, fields=["balance_info", "budget_remaining"]
        )
        [row, _] = asked["data"]["advertiser_account_list"]
        assert set(row) == {"advertiser_id", "balance_info", "budget_remaining"}
        # The reference's own case: all six additional fields with page_size 1.
        every = await api_get(
            http,
            "/advertiser/balance/get/",
            bc_id=BC,
            page_size=1,
            fields=[
                "budget_remaining",
                "budget_frequency_restriction",
                "budget_amount_restriction",
                "min_transferable_amount",
                "max_transferable_amount",
                "balance_info",
            ],
        )
        [row] = every["data"]["advertiser_account_list"]
        assert IDENTITY_FIELDS | FLAT_FIELDS | {"balance_info"} <= set(row)
        # Without `fields` both readings give the default reply.
        plain = await api_get(http, "/advertiser/balance/get/", bc_id=BC)
        assert set(plain["data"]["advertiser_account_list"][0]) == (
            IDENTITY_FIELDS | FLAT_FIELDS | DEFAULT_FIELDS
        )


async def test_balance_get_filtering(client: httpx.AsyncClient) -> None:
    body = await api_get(client, "/advertiser/balance/get/", bc_id=BC, filtering={"keyword": "02"})
    assert [r["advertiser_id"] for r in body["data"]["advertiser_account_list"]] == [STEADY]
    body = await api_get(
        client,
        "/advertiser/balance/get/",
        bc_id=BC,
        filtering={"advertiser_status": ["SHOW_ACCOUNT_STATUS_PUNISHED"]},
    )
    assert body["data"]["advertiser_account_list"] == []
    assert body["data"]["page_info"]["total_page"] == 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 40002),
        ({"bc_id": "999"}, 40001),
        ({"bc_id": BC, "page_size": 51}, 40002),
        ({"bc_id": BC, "page_size": 0}, 40002),
        ({"bc_id": BC, "page": 0}, 40002),
        ({"bc_id": BC, "page": "one"}, 40002),
        ({"bc_id": BC, "fields": "balance_info"}, 40002),
        ({"bc_id": BC, "filtering": '{"advertiser_status": ["NOPE"]}'}, 40002),
    ],
)
async def test_balance_get_rejects_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, Any], code: int
) -> None:
    response = await client.get(
        f"{API_PREFIX}/advertiser/balance/get/", params=params, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == code
    assert body["data"] == {}


@pytest.mark.parametrize("headers", [{}, {"Access-Token": "wrong"}, {"Authorization": TOKEN}])
async def test_wrong_or_missing_token_is_40105(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get(
        f"{API_PREFIX}/bc/balance/get/", params={"bc_id": BC}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["code"] == 40105


async def test_paging_to_the_end_returns_every_advertiser_once() -> None:
    many = [advertiser(f"71{n:011d}", grant_balance="1.00") for n in range(120)]
    async with asgi_client(Sandbox(scenario(many))) as http:
        seen: list[str] = []
        page, total_page = 1, None
        while total_page is None or page <= total_page:
            body = await api_get(
                http, "/advertiser/balance/get/", bc_id=BC, page=page, page_size=50
            )
            info = body["data"]["page_info"]
            assert info["total_number"] == 120
            total_page = info["total_page"]
            seen += [row["advertiser_id"] for row in body["data"]["advertiser_account_list"]]
            page += 1
        assert total_page == 3
        assert sorted(seen) == sorted(a["advertiser_id"] for a in many)
        assert len(set(seen)) == 120
        past_end = await api_get(http, "/advertiser/balance/get/", bc_id=BC, page=4, page_size=50)
        assert past_end["data"]["advertiser_account_list"] == []


async def test_qps_limit_answers_40100_and_recovers() -> None:
    real = FakeMonotonic(1000.0)
    sandbox = Sandbox(scenario(qps_limit=5), monotonic=real)
    async with asgi_client(sandbox) as http:

        async def code() -> int:
            body = await api_get(http, "/bc/balance/get/", bc_id=BC)
            result: int = body["code"]
            return result

        assert [await code() for _ in range(5)] == [0] * 5
        assert await code() == 40100
        real.now += 0.5
        assert await code() == 40100  # 7 arrivals in the last second
        real.now += 0.6  # the first six are now older than 1 s; one remains
        assert [await code() for _ in range(4)] == [0, 0, 0, 0]
        assert await code() == 40100
        real.now += 1.01
        assert await code() == 0

    stats = sandbox.stats
    assert stats.throttled == 3
    assert stats.replies_by_code["40100"] == 3
    assert stats.replies_by_code["0"] == 10
    assert stats.max_requests_per_second == 7
    assert stats.requests_by_path[f"{API_PREFIX}/bc/balance/get/"] == 13


async def test_qps_limit_with_real_time() -> None:
    sandbox = Sandbox(scenario(qps_limit=3))
    async with asgi_client(sandbox) as http:
        codes = [(await api_get(http, "/bc/balance/get/", bc_id=BC))["code"] for _ in range(4)]
        assert codes == [0, 0, 0, 40100]
        await asyncio.sleep(1.05)
        assert (await api_get(http, "/bc/balance/get/", bc_id=BC))["code"] == 0


async def test_bc_balance_get(client: httpx.AsyncClient) -> None:
    body = await api_get(client, "/bc/balance/get/", bc_id=BC)
    assert body["code"] == 0
    data = body["data"]
    assert set(data) == {"bc_id", "currency"} | FLAT_FIELDS
    assert (data["bc_id"], data["currency"]) == (BC, "USD")
    assert data["account_balance"] == Decimal("315.00")
    assert data["valid_grant_balance"] == Decimal("210.00")


async def test_advertiser_info(client: httpx.AsyncClient) -> None:
    body = await api_get(client, "/advertiser/info/", advertiser_ids=[DRAIN, STEADY])
    assert body["code"] == 0
    rows = body["data"]["list"]
    assert [row["advertiser_id"] for row in rows] == [DRAIN, STEADY]
    expected = {"advertiser_id", "name", "status", "currency", "timezone", "owner_bc_id", "balance"}
    assert set(rows[0]) == expected
    assert rows[0]["owner_bc_id"] == BC
    assert rows[0]["balance"] == Decimal("15.00")
    too_many = await api_get(client, "/advertiser/info/", advertiser_ids=[DRAIN] * 101)
    assert too_many["code"] == 40002
    assert (await api_get(client, "/advertiser/info/"))["code"] == 40002
    assert (await api_get(client, "/advertiser/info/", advertiser_ids=["404"]))["code"] == 40001


async def test_cost_and_transactions_follow_the_simulation() -> None:
    sandbox = Sandbox(_busy_scenario())
    async with asgi_client(sandbox) as http:
        await advance(http, 32 * 3600)
        cost = await bc_report(http, COST, start_date="2026-11-01", end_date="2026-11-02")
        assert cost["code"] == 0
        rows = {row["advertiser_id"]: row for row in cost["data"]["cost_list"]}
        expected = sandbox.simulation.spend_between(DRAIN, START.date(), at_hours(32).date())
        assert rows[DRAIN]["grant_amount"] == expected.grant_amount.quantize(Decimal("0.01"))
        row_fields = {
            "advertiser_id",
            "advertiser_name",
            "amount",
            "cash_amount",
            "grant_amount",
            "tax_amount",
            "currency",
        }
        assert set(rows[DRAIN]) == row_fields
        for row in rows.values():
            assert row["amount"] == row["cash_amount"] + row["grant_amount"]
        summary = cost["data"]["transaction_summary"]
        assert summary["amount"] == sum(row["amount"] for row in rows.values())

        too_long = await bc_report(http, COST, start_date="2025-01-01", end_date="2026-11-02")
        assert too_long["code"] == 40002

        txs = await bc_report(
            http,
            TRANSACTIONS,
            transaction_types=["PROMOTION_ISSUED", "PROMOTION_EXPIRED"],
            start_time="2026-11-01 00:00:00",
            end_time="2026-11-02 12:00:00",
        )
        assert txs["code"] == 0
        listed = txs["data"]["transaction_list"]
        assert [tx["transaction_type"] for tx in listed] == [
            "PROMOTION_EXPIRED",
            "PROMOTION_ISSUED",
        ]
        issued = listed[1]
        assert issued["amount"] == Decimal("40.00")
        assert issued["amount_type"] == "POSITIVE"
        assert listed[0]["amount_type"] == "NEGATIVE"
        assert issued["create_time"] == "2026-11-01 13:00:00"
        assert issued["account_id"] == DRAIN
        assert txs["data"]["page_info"]["total_number"] == 2


async def test_faults_are_injected_reproducibly() -> None:
    first = await _fault_codes(3)
    assert first == await _fault_codes(3)
    assert first != await _fault_codes(4)
    assert {0, 50000, "http_500"} <= set(first)


async def _fault_codes(seed: int) -> list[int | str]:
    faults = {"http_500_rate": 0.3, "error_code_rate": 0.3, "seed": seed}
    sandbox = Sandbox(scenario(faults=faults, qps_limit=1000))
    result: list[int | str] = []
    async with asgi_client(sandbox) as http:
        for _ in range(40):
            response = await http.get(
                f"{API_PREFIX}/bc/balance/get/", params={"bc_id": BC}, headers=AUTH
            )
            result.append("http_500" if response.status_code == 500 else response.json()["code"])
    assert sandbox.stats.replies_by_code["http_500"] == result.count("http_500")
    return result


async def test_http_500_fault_is_a_bare_http_error() -> None:
    sandbox = Sandbox(scenario())
    sandbox.set_faults(Faults(http_500_rate=1.0))
    async with asgi_client(sandbox) as http:
        url = f"{API_PREFIX}/bc/balance/get/"
        failed = await http.get(url, params={"bc_id": BC}, headers=AUTH)
        assert failed.status_code == 500
        sandbox.set_faults(Faults())
        assert (await api_get(http, "/bc/balance/get/", bc_id=BC))["code"] == 0
    assert sandbox.stats.replies_by_code == {"http_500": 1, "0": 1}


async def test_latency_and_fault_replacement_via_admin(client: httpx.AsyncClient) -> None:
    reply = await client.post(f"{ADMIN_PREFIX}/faults", json={"latency_ms": 150})
    assert reply.status_code == 200
    began = time.monotonic()
    assert (await api_get(client, "/bc/balance/get/", bc_id=BC))["code"] == 0
    assert time.monotonic() - began >= 0.15
    await client.post(f"{ADMIN_PREFIX}/faults", json={"error_code_rate": 1})
    assert (await api_get(client, "/bc/balance/get/", bc_id=BC))["code"] == 50000
    bad = await client.post(f"{ADMIN_PREFIX}/faults", json={"error_code_rate": 2})
    assert bad.status_code == 400


async def test_admin_clock_events_state_and_stats(client: httpx.AsyncClient) -> None:
    moved = await client.post(f"{ADMIN_PREFIX}/clock/advance", json={"seconds": 7200})
    assert moved.status_code == 200
    assert moved.json()["sim_time"] == at_hours(2).isoformat()

    applied = await client.post(
        f"{ADMIN_PREFIX}/events",
        json={"advertiser_id": DRAIN, "action": "grant_topup", "amount": 2.5},
    )
    assert applied.status_code == 200
    assert wire.loads(applied.content)["balance_info"]["grant_balance"] == Decimal("10.50")

    assert (await client.post(f"{ADMIN_PREFIX}/events", json={"action": "nope"})).status_code == 400
    with_at = {"advertiser_id": DRAIN, "action": "unfreeze_grant", "at": "+1h"}
    assert (await client.post(f"{ADMIN_PREFIX}/events", json=with_at)).status_code == 400
    negative = await client.post(f"{ADMIN_PREFIX}/clock/advance", json={"seconds": -1})
    assert negative.status_code == 400

    state = wire.loads((await client.get(f"{ADMIN_PREFIX}/state")).content)
    assert state["sim_time"] == at_hours(2).isoformat()
    [center] = state["business_centers"]
    drain = center["advertisers"][0]
    assert drain["balance_info"]["grant_balance"] == Decimal("10.50")
    assert_identities(drain["balance_info"])
    assert state["applied_events"][0]["action"] == "grant_topup"

    await api_get(client, "/bc/balance/get/", bc_id=BC)
    stats = (await client.get(f"{ADMIN_PREFIX}/stats")).json()
    assert stats["requests_by_path"][f"{API_PREFIX}/bc/balance/get/"] == 1
    assert stats["replies_by_code"] == {"0": 1}
    assert stats["max_requests_per_second"] == 1
    assert stats["throttled"] == 0


# --- API fidelity: zones, billing types, shared accounts, payment portfolios ------------------


def _fidelity_scenario(*, shared_access: bool = True) -> Scenario:
    return Scenario.model_validate(
        {
            "start": START,
            "speed": 0,
            "access_token": TOKEN,
            "business_centers": [
                {
                    "bc_id": BC,
                    "name": "Agency",
                    "timezone": "UTC+08:00",
                    "shared_access": shared_access,
                    "payment_portfolio": {"payment_portfolio_id": "74", "type": "SHARED"},
                    "advertisers": [
                        advertiser(DRAIN, timezone="Asia/Shanghai", cash_balance="30", status=None),
                        advertiser(STEADY, owner_bc_id="7000000000009", cash_balance="70"),
                    ],
                }
            ],
            "events": [
                {"at": "+2h", "advertiser_id": DRAIN, "action": "grant_topup", "amount": "50"},
                {"at": "+3h", "advertiser_id": STEADY, "action": "grant_topup", "amount": "20"},
                {"at": "+4h", "advertiser_id": DRAIN, "action": "cash_topup", "amount": "10"},
            ],
        }
    )


async def test_transactions_carry_offset_zones_and_are_filtered_on_the_bcs_clock() -> None:
    sandbox = Sandbox(_fidelity_scenario())
    async with asgi_client(sandbox) as http:
        await advance(http, 6 * 3600)
        # 10:00 on the BC's UTC+08:00 clock is 02:00 UTC, when the credit was issued.
        found = await bc_report(
            http,
            TRANSACTIONS,
            start_time="2026-11-01 10:00:00",
            end_time="2026-11-01 23:00:00",
        )
        [issued, topup] = sorted(
            found["data"]["transaction_list"], key=lambda row: row["create_time"]
        )
        assert (issued["transaction_type"], issued["billing_type"]) == (
            "PROMOTION_ISSUED",
            "CREDIT",
        )
        assert (issued["timezone"], issued["create_time"]) == ("UTC+08:00", "2026-11-01 10:00:00")
        assert issued["payment_portfolio_id"] == "74"
        assert (topup["transaction_type"], topup["billing_type"]) == ("ADD_BALANCE", "CASH")
        # One second later on that clock, the credit is outside the window.
        later = await bc_report(
            http,
            TRANSACTIONS,
            start_time="2026-11-01 10:00:01",
            billing_types=["CREDIT"],
        )
        assert later["data"]["transaction_list"] == []
        # The shared-in account's transactions need their own query.
        shared = await bc_report(
            http,
            TRANSACTIONS,
            owner_of_account=["SHARED_BY_OTHER_BUSINESS_CENTER"],
        )
        [guest] = shared["data"]["transaction_list"]
        assert (guest["account_id"], guest["amount"]) == (STEADY, Decimal("20.00"))
        assert guest["timezone"] == "UTC+00:00"


async def test_shared_accounts_without_access_are_refused_with_40001() -> None:
    sandbox = Sandbox(_fidelity_scenario(shared_access=False))
    async with asgi_client(sandbox) as http:
        shared = await bc_report(
            http,
            TRANSACTIONS,
            owner_of_account=["SHARED_BY_OTHER_BUSINESS_CENTER"],
        )
        assert shared["code"] == 40001
        owned = await api_get(http, TRANSACTIONS, bc_id=BC)
        assert owned["code"] == 0


async def test_a_shared_portfolio_reports_its_cash_on_every_account() -> None:
    sandbox = Sandbox(_fidelity_scenario())
    async with asgi_client(sandbox) as http:
        body = await api_get(http, "/advertiser/balance/get/", bc_id=BC)
    rows = {row["advertiser_id"]: row for row in body["data"]["advertiser_account_list"]}
    # Both accounts are listed (the shared-in one too), and the cash is the portfolio's.
    assert set(rows) == {DRAIN, STEADY}
    for row in rows.values():
        assert row["payment_portfolio_type"] == "SHARED"
        assert row["cash_balance"] == row["valid_cash_balance"] == Decimal("100.00")
    assert rows[DRAIN]["advertiser_status"] is None
