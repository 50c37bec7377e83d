"""The priority scheduler end to end: the sandbox API, the real poller and service roles, real
Redis and a signed-webhook receiver. A report sweep that needs more than the whole budget of
its interval (one request per advertiser) runs all along, and balance polls still come at
least every ``balance_interval_s``, with no ``data.stale`` alert: the issue's run (120
accounts, a short balance interval, reports on) where first-come grants stalled balances for
23 s and sent ~60 false ``data.stale``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from config.settings import DetectSettings, NotifySettings, PollSettings, Settings
from service.roles import poller_role, service_role
from tests.support.end_to_end import sandbox_api
from tests.support.processes import SandboxProcess
from tests.support.receiver import WebhookSink
from tests.support.waiting import eventually

TOKEN = "scheduler-token-5e1f"
ACCOUNTS = 250
QPS = 10
BALANCE_INTERVAL_S = 10.0
REPORT_PATH = "/open_api/v1.3/report/integrated/get/"


def scenario() -> str:
    lines = [
        "start: 2026-11-01T00:00:00Z",
        "speed: 0",
        f"access_token: {TOKEN}",
        f"qps_limit: {QPS}",
        "business_centers:",
        '  - bc_id: "7000000000001"',
        "    name: Busy Agency",
        "    currency: USD",
        "    advertisers:",
    ]
    for n in range(ACCOUNTS):
        lines += [
            f'      - advertiser_id: "71000000{n:05d}"',
            f"        name: Shop {n}",
            '        cash_balance: "500.00"',
            '        grant_balance: "1000.00"',
            '        burn_rate_per_hour: "1.00"',
        ]
    return "\n".join(lines) + "\n"


async def sandbox_stats(sandbox: SandboxProcess) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{sandbox.admin_url}/stats")
        result: dict[str, Any] = reply.json()
        return result


async def test_a_report_sweep_using_all_spare_budget_leaves_balance_polls_on_time(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    # The API in a process of its own, as TikTok is: its per-second count is of arrivals on
    # the wire, not of requests an event loop busy with the roles got round to late.
    async with SandboxProcess(scenario(), tmp_path) as sandbox, WebhookSink() as sink:
        hook, route = sink.receiver_and_route("ops")
        settings = settings.model_copy(
            update={
                "tiktok": sandbox_api(
                    sandbox.base_url,
                    TOKEN,
                    ["7000000000001"],
                    qps=QPS,
                    # The poller shares this test's event loop with the service role; a CI
                    # run once saw one 40100 when a detector batch held the loop between a
                    # grant and its send. The budget now stamps grants when they are sent
                    # (this test passed twice without the margin); the wider margin stays as
                    # a guard until that has more runs behind it.
                    qps_margin_s=0.25,
                ),
                # 255 report requests every 20 s is more than the whole 10 QPS: the report
                # sweep is always behind its pace and takes every grant balances leave.
                "poll": PollSettings(
                    balance_interval_s=BALANCE_INTERVAL_S,
                    report_interval_s=20,
                    spend_interval_s=600,
                    transaction_interval_s=600,
                    bc_balance_interval_s=600,
                    spend_lookback_days=1,
                    # Only the sweeps are watched here.
                    risk_polls=False,
                ),
                "detect": DetectSettings(stale_intervals=3),
                "notify": NotifySettings(console=False, receivers=[hook], route=route),
            }
        )
        url = settings.redis_url or ""
        stream = settings.streams.snapshots
        # Stream ids carry the Redis server's clock, not ours (the suite also runs shifted).
        seconds, micros = await redis_client.time()
        started_ms = seconds * 1000 + micros // 1000
        async with service_role(settings, url), poller_role(settings, url):

            async def a_whole_report_sweep() -> bool:
                stats = await sandbox_stats(sandbox)
                return int(stats["requests_by_path"].get(REPORT_PATH, 0)) >= ACCOUNTS

            await eventually(a_whole_report_sweep, within=240)
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await redis_client.xrange(stream, min=f"{started_ms}-0"),
            )
        stats = await sandbox_stats(sandbox)

    one = "7100000000007"
    polled_ms = [
        int(entry_id.decode().split("-")[0])
        for entry_id, fields in entries
        if b'"account_balance"' in fields[b"__data__"] and one.encode() in fields[b"__data__"]
    ]
    assert len(polled_ms) >= 3
    gaps_s = [(b - a) / 1000 for a, b in pairwise(polled_ms)]
    # At least every interval ("at least this often"), while the report sweep runs.
    assert max(gaps_s) <= BALANCE_INTERVAL_S, gaps_s
    # With budget left between report requests, balances are swept more often than that.
    span_s = (polled_ms[-1] - polled_ms[0]) / 1000
    assert len(gaps_s) > span_s / BALANCE_INTERVAL_S + 1, (len(gaps_s), span_s)
    assert stats["throttled"] == 0
    stale = [p for p in sink.payloads() if p["type"] == "data.stale"]
    assert stale == []
