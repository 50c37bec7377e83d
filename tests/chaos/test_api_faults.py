"""A misbehaving API: 20 % HTTP 500s, 2 s latency and 40100 bursts (its limit is below our
budget). Polls still complete, our QPS budget is never exceeded, and the alerts are right."""

from __future__ import annotations

from collections import Counter

from pydantic import SecretStr
from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import PollSettings, Settings, TikTokSettings
from service.roles import poller_role, service_role
from tests.receiver import WebhookSink
from tests.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario

TOKEN = "chaos-faults-token-51c2"
CLIENT_QPS = 4
# The sandbox admits 3 requests a second against our budget of 4: 40100 in bursts.
SCENARIO = f"""
start: 2026-11-01T00:00:00Z
speed: 2400
access_token: {TOKEN}
qps_limit: 3
faults: {{http_500_rate: 0.2, latency_ms: 2000, seed: 7}}
business_centers:
  - bc_id: "7000000000008"
    name: Flaky Agency
    currency: USD
    advertisers:
      - advertiser_id: "7180000000001"
        name: Draining Shop
        cash_balance: "500.00"
        grant_balance: "100.00"
        burn_rate_per_hour: "10.00"
      - advertiser_id: "7180000000002"
        name: Healthy Store
        cash_balance: "500.00"
        grant_balance: "5000.00"
        burn_rate_per_hour: "1.00"
"""


async def test_alerts_stay_right_against_a_faulty_api(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = settings.model_copy(
            update={
                "tiktok": TikTokSettings(
                    base_url=sandbox.base_url,
                    access_token=SecretStr(TOKEN),
                    bc_ids=["7000000000008"],
                    qps=CLIENT_QPS,
                    backoff_base_s=0.2,
                    backoff_max_s=1.0,
                    max_retries=8,
                ),
                "poll": PollSettings(balance_interval_s=1.0),
                "notify": NotifySettings(
                    console=False,
                    webhooks=[sink.subscriber("chaos", kinds=["credit.low", "credit.exhausted"])],
                ),
            }
        )
        url = settings.redis_url or ""
        async with service_role(settings, url), poller_role(settings, url):

            async def exhausted() -> bool:
                return any(p["type"] == "credit.exhausted" for p in sink.payloads())

            await eventually(exhausted, within=60, every=0.5)
        stats = sandbox.sandbox.stats.as_dict()

    codes = stats["replies_by_code"]
    assert codes.get("http_500", 0) > 0, codes
    assert codes.get("40100", 0) > 0, codes
    assert codes.get("0", 0) > 0, codes
    # Our budget is the bound: the API never saw more than CLIENT_QPS requests in a second.
    assert stats["max_requests_per_second"] <= CLIENT_QPS, stats
    transitions = Counter((p["type"], p["data"]["status"]) for p in sink.payloads())
    assert transitions == {("credit.low", "firing"): 1, ("credit.exhausted", "firing"): 1}
    assert {p["data"]["advertiser_name"] for p in sink.payloads()} == {"Draining Shop"}
    assert all(r.verified for r in sink.received)
