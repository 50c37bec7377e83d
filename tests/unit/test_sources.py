"""The credit-lifecycle sources end to end in one process: sandbox endpoints, client, pollers.

The sandbox app is called through ``httpx.ASGITransport`` (no socket); the client parses
the replies exactly as it would the real API's.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config.settings import TikTokSettings
from tests.support.pipeline import ListPublisher
from workers.contract.snapshots import CreditTransactionSnapshot, DailySpendSnapshot
from workers.poller import SourcePoller
from workers.sandbox import EventAction, Sandbox, parse_scenario
from workers.spend_poller import CostPoller, ReportPoller
from workers.tiktok import AuthError, TikTokClient, reply_time
from workers.transaction_poller import TransactionPoller

START = datetime(2026, 11, 1, tzinfo=UTC)
TOKEN = "sources-token"
BC = "7000000000001"
SPENDER, BERLIN = "7100000000001", "7100000000002"

SCENARIO = f"""
start: 2026-11-01T00:00:00Z
speed: 0
access_token: {TOKEN}
business_centers:
  - bc_id: "{BC}"
    name: Agency
    advertisers:
      - {{advertiser_id: "{SPENDER}", name: Spender, cash_balance: "1000.00",
          grant_balance: "50.00", burn_rate_per_hour: "10.00"}}
      - {{advertiser_id: "{BERLIN}", name: Berlin, timezone: Europe/Berlin,
          cash_balance: "1000.00", burn_rate_per_hour: "1.00"}}
ledger:
  credits:
    - {{id: soon, advertiser_id: "{SPENDER}", type: free, amount: "100.00", currency: USD,
        valid_from: 2026-11-01T00:00:00Z, valid_to: 2026-11-01T12:00:00Z}}
    - {{id: later, advertiser_id: "{SPENDER}", type: free, amount: "100.00", currency: USD,
        valid_from: 2026-11-01T06:00:00Z, valid_to: 2026-11-10T00:00:00Z}}
    - {{id: pct, advertiser_id: "{SPENDER}", type: discount, currency: USD,
        discount: {{percent: "5", cap: "10.00"}},
        valid_from: 2026-11-01T00:00:00Z, valid_to: 2026-11-10T00:00:00Z}}
"""


class World:
    def __init__(self) -> None:
        ticks = itertools.count()
        self.sandbox = Sandbox(
            parse_scenario(SCENARIO), speed=0, monotonic=lambda: float(next(ticks))
        )
        self.client = TikTokClient(
            TikTokSettings(
                base_url="http://sandbox/open_api/v1.3",
                access_token=SecretStr(TOKEN),
                max_retries=0,
                qps=1000,
                qpm=60_000,
            ),
            transport=httpx.ASGITransport(app=self.sandbox.app),
        )
        self.publisher = ListPublisher()
        self.rejected: list[dict[str, Any]] = []

    async def reject(self, **fields: Any) -> None:
        self.rejected.append(fields)

    def advance(self, hours: float) -> None:
        self.sandbox.clock.advance(hours * 3600)

    async def poll(self, poller: SourcePoller) -> list[Any]:
        start = len(self.publisher.snapshots)
        await poller.poll(BC)
        return self.publisher.snapshots[start:]


@pytest.fixture
async def world() -> Any:
    made = World()
    yield made
    await made.client.aclose()


async def test_replies_carry_the_simulated_time_as_their_date(world: World) -> None:
    world.advance(5.5)
    await world.client.bc_balance(BC)
    assert reply_time() == START + timedelta(hours=5.5)


async def test_credits_are_issued_spent_earliest_first_and_forfeited(world: World) -> None:
    sim = world.sandbox.sync()
    assert sim.balances(SPENDER).grant_balance == Decimal("150.00")  # 50 + `soon`
    world.advance(6)
    sim = world.sandbox.sync()
    # 60 spent, all from `soon` (it expires first); `later` arrives at 6 h.
    assert sim.credit_remaining(SPENDER) == {"soon": Decimal(40), "later": Decimal(100)}
    world.advance(6)
    sim = world.sandbox.sync()
    # `soon` ran out at 10 h, then `later` paid 20; nothing left of `soon` to forfeit.
    assert sim.credit_remaining(SPENDER) == {"later": Decimal(80)}
    kinds = [(tx.transaction_type, tx.amount) for tx in sim.transactions()]
    assert kinds == [("PROMOTION_ISSUED", Decimal(100)), ("PROMOTION_ISSUED", Decimal(100))]
    assert sim.balances(SPENDER).grant_balance == Decimal("130.00")


async def test_unused_credit_is_forfeited_at_expiry(world: World) -> None:
    world.sandbox.simulation.apply_now(_action(SPENDER, "set_burn_rate", per_hour="1"))
    world.advance(13)
    sim = world.sandbox.sync()
    expired = [tx for tx in sim.transactions() if tx.transaction_type == "PROMOTION_EXPIRED"]
    assert [(tx.amount, tx.create_time) for tx in expired] == [
        (Decimal("88.00"), START + timedelta(hours=12))
    ]
    snapshots = await world.poll(
        TransactionPoller(world.client, world.publisher, reject=world.reject)
    )
    transactions = [s for s in snapshots if isinstance(s, CreditTransactionSnapshot)]
    assert sorted(t.transaction_type for t in transactions) == [
        "PROMOTION_EXPIRED",
        "PROMOTION_ISSUED",
        "PROMOTION_ISSUED",
    ]
    assert all(t.create_time.tzinfo is not None for t in transactions)


async def test_cost_poller_reads_each_day_and_figures_grow_until_the_day_ends(
    world: World,
) -> None:
    poller = CostPoller(world.client, world.publisher, reject=world.reject, lookback_days=2)
    world.advance(20)
    first = [s for s in await world.poll(poller) if isinstance(s, DailySpendSnapshot)]
    today = {s.advertiser_id: s for s in first if s.day == date(2026, 11, 1)}
    assert today[SPENDER].total == Decimal("200.00")
    assert today[SPENDER].grant_amount == Decimal("200.00")
    world.advance(6)  # past midnight: Nov 1 is revised upwards one last time
    again = [s for s in await world.poll(poller) if isinstance(s, DailySpendSnapshot)]
    revised = {(s.advertiser_id, s.day): s for s in again}
    assert revised[(SPENDER, date(2026, 11, 1))].total == Decimal("240.00")
    assert revised[(SPENDER, date(2026, 11, 2))].total == Decimal("20.00")
    assert revised[(SPENDER, date(2026, 11, 1))].observed_at > today[SPENDER].observed_at


async def test_report_poller_uses_local_days_and_string_metrics(world: World) -> None:
    poller = ReportPoller(world.client, world.publisher, reject=world.reject, lookback_days=3)
    world.advance(30)
    snapshots = [s for s in await world.poll(poller) if isinstance(s, DailySpendSnapshot)]
    berlin = {s.day: s.total for s in snapshots if s.advertiser_id == BERLIN}
    # Berlin is UTC+1: its 1 November started at 23:00 UTC on 31 October.
    assert berlin == {date(2026, 11, 1): Decimal("23.00"), date(2026, 11, 2): Decimal("7.00")}
    assert all(s.source == "report" for s in snapshots)
    assert world.rejected == []
    rows = await world.client.report_spend(SPENDER, date(2026, 11, 1), date(2026, 11, 2))
    assert rows[0]["metrics"]["spend"] == "240.00"
    assert isinstance(rows[0]["metrics"]["voucher_spend"], str)


async def test_hidden_accounts_and_revoked_access(world: World) -> None:
    sim = world.sandbox.simulation
    sim.apply_now(_action(BERLIN, "hide_account"))
    rows = await world.client.advertiser_balances(BC)
    assert [r["advertiser_id"] for r in rows] == [SPENDER]
    sim.apply_now(_action(BERLIN, "revoke_access"))
    with pytest.raises(AuthError):
        await world.client.account_costs(BC, date(2026, 11, 1))
    with pytest.raises(AuthError):
        await world.client.report_spend(SPENDER, date(2026, 11, 1), date(2026, 11, 1))
    sim.apply_now(_action(BERLIN, "restore_access"))
    sim.apply_now(_action(BERLIN, "show_account"))
    assert len(await world.client.advertiser_balances(BC)) == 2


async def test_a_bad_row_is_set_aside_with_its_id_and_the_rest_publish() -> None:
    class Api:
        async def bc_balance(self, bc_id: str) -> dict[str, Any]:
            return {}

        async def account_costs(self, bc_id: str, day: date) -> list[dict[str, Any]]:
            good = {
                "advertiser_id": "71",
                "amount": Decimal("3.00"),
                "cash_amount": Decimal("1.00"),
                "grant_amount": Decimal("2.00"),
                "currency": "USD",
            }
            return [good, {**good, "advertiser_id": "72", "grant_amount": "lots"}]

    publisher = ListPublisher()
    rejected: list[dict[str, Any]] = []

    async def reject(**fields: Any) -> None:
        rejected.append(fields)

    poller = CostPoller(Api(), publisher, reject=reject, lookback_days=1, clock=lambda: START)
    result = await poller.poll("70")
    assert result is not None
    assert (result.published, result.rejected) == (2, 1)  # one day row and an ok status
    # Named by account and day (the day is "today" at the API; this fake has no clock).
    [entry_id] = [r["entry_id"] for r in rejected]
    assert re.fullmatch(r"70:72:\d{4}-\d{2}-\d{2}", entry_id)


def _action(advertiser_id: str, action: str, **fields: Any) -> EventAction:
    return EventAction.model_validate({"advertiser_id": advertiser_id, "action": action, **fields})
