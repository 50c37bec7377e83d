"""End to end as the real API replies: both readings of ``fields``, offset time zones, shared
accounts. Sandbox HTTP server -> poller -> Redis -> detector -> signed webhook, nothing mocked.

The sandbox serves ``/advertiser/balance/get/`` under the scenario's ``fields_reading`` and
writes transaction rows with ``timezone: "UTC+08:00"`` and ``create_time`` on that clock, as
the reference says TikTok does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.roles import poller_role, service_role
from tests.support.end_to_end import TOKEN, admin, running, wired
from tests.support.receiver import WebhookSink
from tests.support.waiting import eventually
from workers.contract import wire
from workers.sandbox import SandboxServer, parse_scenario

BC = "7000000000001"
DRAINING, SHANGHAI, GUEST = "7100000000001", "7100000000021", "7100000000022"
HOUR = 3600
START = datetime(2026, 11, 1, tzinfo=UTC)
ZONES = {BC: "UTC+08:00"}


def scenario(fields_reading: str) -> str:
    return f"""
start: {START.isoformat()}
speed: 0
access_token: {TOKEN}
qps_limit: 20
fields_reading: {fields_reading}
business_centers:
  - bc_id: "{BC}"
    name: Fidelity Agency
    currency: USD
    timezone: "UTC+08:00"
    advertisers:
      - advertiser_id: "{DRAINING}"
        name: Draining Shop
        timezone: Etc/GMT-8
        cash_balance: "20.00"
        grant_balance: "100.00"
        burn_rate_per_hour: "10.00"
      - advertiser_id: "{SHANGHAI}"
        name: Shanghai Store
        timezone: Asia/Shanghai
        cash_balance: "500.00"
        grant_balance: "1000.00"
        burn_rate_per_hour: "1.00"
      - advertiser_id: "{GUEST}"
        name: Guest Brand
        owner_bc_id: "7000000000009"
        cash_balance: "500.00"
        grant_balance: "1000.00"
        burn_rate_per_hour: "1.00"
events:
  - {{at: "+2h", advertiser_id: "{SHANGHAI}", action: grant_topup, amount: "250.00"}}
  - {{at: "+5h", advertiser_id: "{SHANGHAI}", action: expire_grant, amount: "30.00"}}
  - {{at: "+3h", advertiser_id: "{GUEST}", action: grant_topup, amount: "75.00"}}
"""


def of_kind(sink: WebhookSink, kind: str) -> list[dict[str, Any]]:
    return [p["data"] for p in sink.payloads() if p["type"] == kind]


@pytest.mark.parametrize("reading", ["literal", "lenient"])
async def test_exhausted_credit_alerts_under_either_reading_of_fields(
    reading: str, settings: Settings, redis_client: Redis
) -> None:
    async with (
        SandboxServer(parse_scenario(scenario(reading))) as sandbox,
        WebhookSink() as sink,
    ):
        settings = wired(settings, sandbox, sink)
        async with running(settings):

            async def tracked() -> bool:
                return bool(await redis_client.exists(settings.streams.key("state", DRAINING)))

            await eventually(tracked)
            if reading == "literal":
                # The switch is real: asked with `fields`, rows lose currency and name.
                rows = await _balance_rows(sandbox, fields='["balance_info"]')
                assert set(rows[0]) == {"advertiser_id", "balance_info"}
            await admin(sandbox, "/clock/advance", {"seconds": 11 * HOUR})  # 100 at 10/h
            await eventually(lambda: _has(sink, "credit.exhausted"))
        stats = sandbox.sandbox.stats.as_dict()
    [exhausted] = of_kind(sink, "credit.exhausted")
    assert exhausted["advertiser_id"] == DRAINING
    assert exhausted["advertiser_name"] == "Draining Shop"
    assert exhausted["currency"] == "USD"
    assert exhausted["values"]["valid_grant_balance"] == "0.00"
    # TikTok's own flag: the 10.00 left is under 3x the week's average daily spend.
    assert exhausted["values"]["balance_reminder"] == "true"
    # No balance row was rejected: every poll published all three accounts.
    assert "40002" not in stats["replies_by_code"]
    assert all(r.verified for r in sink.received)


async def test_transactions_in_a_utc_plus_8_zone_and_from_a_shared_account_are_notified(
    settings: Settings, redis_client: Redis
) -> None:
    async with (
        SandboxServer(parse_scenario(scenario("literal"))) as sandbox,
        WebhookSink() as sink,
    ):
        settings = wired(settings, sandbox, sink)
        url = settings.redis_url or ""
        # The transaction window on the BC's own clock, as the sandbox reads it.
        async with service_role(settings, url), poller_role(settings, url, bc_zones=ZONES):

            async def tracked() -> bool:
                return bool(await redis_client.exists(settings.streams.key("state", SHANGHAI)))

            await eventually(tracked)
            await admin(sandbox, "/clock/advance", {"seconds": 6 * HOUR})
            await eventually(lambda: _count(sink, "credit.issued", 2))
            await eventually(lambda: _has(sink, "credit.expired"))

    issued = {p["advertiser_id"]: p for p in of_kind(sink, "credit.issued")}
    assert set(issued) == {SHANGHAI, GUEST}
    # create_time "2026-11-01 10:00:00" at UTC+08:00 is 02:00 UTC, when the credit came.
    assert datetime.fromisoformat(issued[SHANGHAI]["starts_at"]) == START + timedelta(hours=2)
    assert issued[SHANGHAI]["values"]["amount"] == "250.00"
    assert issued[SHANGHAI]["values"]["declared"] == "no"
    # Shared in from another BC: seen only through the owner_of_account query.
    assert datetime.fromisoformat(issued[GUEST]["starts_at"]) == START + timedelta(hours=3)
    assert issued[GUEST]["values"]["amount"] == "75.00"
    [expired] = of_kind(sink, "credit.expired")
    assert expired["advertiser_id"] == SHANGHAI
    assert datetime.fromisoformat(expired["starts_at"]) == START + timedelta(hours=5)
    assert expired["values"]["forfeited"] == "30.00"
    assert all(r.verified for r in sink.received)


async def _balance_rows(sandbox: SandboxServer, **params: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{sandbox.base_url}/advertiser/balance/get/",
            params={"bc_id": BC, **params},
            headers={"Access-Token": TOKEN},
        )
    rows: list[dict[str, Any]] = wire.loads(response.content)["data"]["advertiser_account_list"]
    return rows


async def _has(sink: WebhookSink, kind: str) -> bool:
    return bool(of_kind(sink, kind))


async def _count(sink: WebhookSink, kind: str, count: int) -> bool:
    return len(of_kind(sink, kind)) >= count
