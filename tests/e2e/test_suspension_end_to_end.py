"""End to end: the API suspends an endpoint mid-run (TikTok's 5 minutes of 40100 after going
over the minute limit, forced in the sandbox). The poller pauses that endpoint instead of
burning its retries, says so in ``/readyz``, a metric and a ``source.rate_limited`` alert,
sends nothing while paused, and resumes by itself: the poll that waited delivers its data and
the alert resolves.

Real parts throughout: the sandbox on a socket (speed 1, so its suspension lasts real
seconds), Redis, the service role's HTTP app, a webhook receiver verifying signatures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import structlog
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from config.settings import DetectSettings, NotifySettings, Settings
from service.roles import poller_role, service_role
from tests.support.end_to_end import sandbox_api
from tests.support.polls import polls_every
from tests.support.receiver import WebhookSink
from tests.support.scenarios import scenario_text
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers.contract.snapshots import AccountBalanceSnapshot, parse_snapshot
from workers.sandbox import SandboxServer, parse_scenario
from workers.suspension_marks import SuspensionMark, SuspensionMarks
from workers.tiktok import ADVERTISER_BALANCE_PATH

TOKEN = "suspension-token-7c1d2e"
BC = "7000000000021"
SHOP = "7100000000021"
# The sandbox's suspension (simulated = real seconds at speed 1) and the client's pause: the
# pause outlasts the suspension, so the first call after it gets through.
SANDBOX_SUSPENSION_S = 3
CLIENT_PAUSE_S = 8.0

SCENARIO = scenario_text("suspension", TOKEN=TOKEN, BC=BC, SHOP=SHOP)


def wired(settings: Settings, sandbox: SandboxServer, sink: WebhookSink) -> Settings:
    hook, route = sink.receiver_and_route("ops", kinds=["source.rate_limited"])
    return settings.model_copy(
        update={
            "tiktok": sandbox_api(
                sandbox.base_url,
                TOKEN,
                [BC],
                backoff_base_s=0.1,
                backoff_max_s=0.5,
                suspend_after_s=0.5,
                suspension_s=CLIENT_PAUSE_S,
            ),
            # Balances not polled more often: balance sweeps always due would take every grant
            # of the balance endpoint, which the report source's account listing shares (see
            # workers/priorities.py), and the waiting report poll would resume late.
            "poll": polls_every(
                balance_s=1.0, spend_s=0.5, report_s=1.0, bc_balance_s=0.5, lookback_days=1
            ),
            "detect": DetectSettings(stale_intervals=500),
            "notify": NotifySettings(console=False, receivers=[hook], route=route),
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[str]:
    """Both roles; yields the service's HTTP root."""
    urls: list[str] = []
    url = settings.redis_url or ""
    async with (
        service_role(settings, url, on_listening=urls.append),
        poller_role(settings, url),
    ):
        yield urls[0]


async def balances(redis: Redis, settings: Settings) -> list[AccountBalanceSnapshot]:
    found = []
    for fields in await entries(redis, settings.streams.snapshots):
        snapshot = parse_snapshot(body(fields))
        if isinstance(snapshot, AccountBalanceSnapshot):
            found.append(snapshot)
    return found


def gauge(endpoint: str) -> float:
    value = REGISTRY.get_sample_value("creditwatch_api_suspended", {"endpoint": endpoint})
    return value or 0.0


async def test_a_suspension_mid_run_pauses_the_endpoint_and_the_poll_resumes(
    settings: Settings, redis_client: Redis
) -> None:
    async with SandboxServer(parse_scenario(SCENARIO)) as sandbox, WebhookSink() as sink:
        settings = wired(settings, sandbox, sink)
        marks = SuspensionMarks(redis_client, settings.streams)
        gauge_before = gauge(ADVERTISER_BALANCE_PATH)
        with structlog.testing.capture_logs() as logs:
            async with running(settings) as root, httpx.AsyncClient() as http:
                await eventually(lambda: _has_balances(redis_client, settings), within=20)

                forced = await http.post(
                    f"{sandbox.admin_url}/suspend",
                    json={"path": ADVERTISER_BALANCE_PATH, "seconds": SANDBOX_SUSPENSION_S},
                )
                assert forced.status_code == 200, forced.text
                # Money arrives while the endpoint is suspended: the waiting poll must bring it.
                topped = await http.post(
                    f"{sandbox.admin_url}/events",
                    json={"advertiser_id": SHOP, "action": "grant_topup", "amount": "250.00"},
                )
                assert topped.status_code == 200, topped.text

                paused: list[SuspensionMark] = []

                async def marked() -> bool:
                    paused[:] = await marks.current(datetime.now(UTC))
                    return bool(paused)

                await eventually(marked, within=20)
                [mark] = paused
                assert mark.endpoint == ADVERTISER_BALANCE_PATH
                assert mark.code == 40100
                assert mark.until - mark.since == timedelta(seconds=CLIENT_PAUSE_S)
                ready = await http.get(f"{root}/readyz")
                assert ready.status_code == 503
                reasons = ready.json()["reasons"]
                assert f"tiktok endpoint {ADVERTISER_BALANCE_PATH} suspended until" in (
                    " ".join(reasons)
                )
                assert gauge(ADVERTISER_BALANCE_PATH) == gauge_before + 1

                await eventually(lambda: _alert(sink, "firing"), within=20)
                await eventually(lambda: _alert(sink, "resolved"), within=CLIENT_PAUSE_S + 30)
                await eventually(lambda: _topped_up(redis_client, settings), within=20)

                async def ready_again() -> bool:
                    reasons = (await http.get(f"{root}/readyz")).json().get("reasons", [])
                    return not any("suspended" in reason for reason in reasons)

                await eventually(ready_again, within=20)
                assert gauge(ADVERTISER_BALANCE_PATH) == gauge_before
                other_paths_ok = sandbox.sandbox.stats.replies_by_code["0"]

    stats = sandbox.sandbox.stats
    # Nothing was sent to the paused endpoint while the pause lasted (arrival times are the
    # sandbox's, on the same wall clock as the pause). Two polls read that endpoint (balances,
    # and reports for their account list): the other one's call may have been on its way
    # when the pause began, and land just after.
    during = [
        t
        for t, path in stats.arrivals
        if path == ADVERTISER_BALANCE_PATH
        and mark.since.timestamp() < t < mark.until.timestamp() - 0.05
    ]
    context = (during, mark, stats.as_dict())
    assert len(during) <= 1, context
    assert all(t < mark.since.timestamp() + 1.0 for t in during), context
    # A handful of throttled calls before the pause, never a retry storm.
    assert 3 <= stats.suspended <= 12, stats.as_dict()
    # The other endpoints carried on meanwhile, and no call gave up.
    assert other_paths_ok > 0
    assert not [e for e in logs if e["event"] == "api.gave_up"]
    suspended = [e for e in logs if e["event"] == "api.suspended"]
    assert len(suspended) == 1, suspended

    firing, resolved = (p for p in sink.payloads() if p["type"] == "source.rate_limited")
    assert firing["data"]["status"] == "firing"
    assert firing["data"]["severity"] == "warning"
    assert firing["data"]["bc_id"] == BC
    assert firing["data"]["values"]["endpoint"] == ADVERTISER_BALANCE_PATH
    # The sources whose polls waited first: both read the suspended endpoint.
    assert set(firing["data"]["values"]["sources"].split(",")) <= {"advertiser_balance", "report"}
    assert resolved["data"]["status"] == "resolved"
    assert resolved["data"]["alert_id"] == firing["data"]["alert_id"]
    assert all(r.verified for r in sink.received)


async def _has_balances(redis: Redis, settings: Settings) -> bool:
    return bool(await balances(redis, settings))


async def _topped_up(redis: Redis, settings: Settings) -> bool:
    return any(
        s.advertiser_id == SHOP and s.balances.valid_grant_balance >= Decimal("350.00")
        for s in await balances(redis, settings)
    )


async def _alert(sink: WebhookSink, status: str) -> bool:
    return any(
        p["type"] == "source.rate_limited" and p["data"]["status"] == status
        for p in sink.payloads()
    )
