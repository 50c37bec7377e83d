"""A misbehaving API: 20 % HTTP 500s, 2 s latency and 40100 bursts (its limit is below our
budget). Polls still complete, our QPS budget is never exceeded, and the alerts are right."""

from __future__ import annotations

from collections import Counter

from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import PollSettings, Settings
from service.roles import poller_role, service_role
from tests.support.end_to_end import sandbox_api
from tests.support.receiver import WebhookSink
from tests.support.scenarios import scenario_text
from tests.support.waiting import eventually
from workers.sandbox import SandboxServer, parse_scenario

TOKEN = "chaos-faults-token-51c2"
CLIENT_QPS = 4
# The sandbox admits 3 requests a second against our budget of 4: 40100 in bursts.
SCENARIO = scenario_text("api_faults", TOKEN=TOKEN)


async def test_alerts_stay_right_against_a_faulty_api(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        hook, route = sink.receiver_and_route("chaos", kinds=["credit.low", "credit.exhausted"])
        settings = settings.model_copy(
            update={
                "tiktok": sandbox_api(
                    sandbox.base_url,
                    TOKEN,
                    ["7000000000008"],
                    qps=CLIENT_QPS,
                    backoff_base_s=0.2,
                    backoff_max_s=1.0,
                    max_retries=8,
                    # 40100 bursts may look persistent for a while: pause briefly, if at all.
                    suspension_s=1.0,
                ),
                "poll": PollSettings(balance_interval_s=1.0),
                "notify": NotifySettings(
                    console=False,
                    # Delivery under chaos, not inhibition: whether a low that is flushed after the
                    # exhausted alert of its account fired goes out would depend on timing.
                    default_inhibit_rules=False,
                    receivers=[hook],
                    route=route,
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
