"""Benchmark 3: one full poll cycle at the API's QPS bound.

The sandbox serves 10,000 advertisers in 5 business centers with a QPS limit of 10; the
client's budget is 10 too. One cycle = every page of balances of every business center, all
business centers at once (as the scheduler runs them). Bound = requests needed / QPS; target:
cycle time <= 1.15 x bound and no 40100 reply.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from bench.common import Timer, record
from config.settings import TikTokSettings
from service.logs import configure_logging
from tests.servers import free_port
from workers.ratelimit import QpsBudget
from workers.tiktok import TikTokClient

CENTERS = 5
PER_CENTER = 2_000
QPS = 10
PAGE = 50
# What the poller uses (tiktok.qps_margin_s): absorbs send-time jitter at the API's clock.
MARGIN_S = TikTokSettings().qps_margin_s


def scenario() -> str:
    lines = [
        "start: 2026-11-01T00:00:00Z",
        "speed: 0",
        "access_token: bench-token",
        f"qps_limit: {QPS}",
        "business_centers:",
    ]
    for center in range(CENTERS):
        lines += [
            f'  - bc_id: "70{center}"',
            f"    name: Center {center}",
            "    currency: USD",
            "    advertisers:",
        ]
        for n in range(PER_CENTER):
            lines += [
                f'      - advertiser_id: "7{center}{n:05d}"',
                f"        name: Shop {center}-{n}",
                '        cash_balance: "100.00"',
                '        grant_balance: "50.00"',
                '        burn_rate_per_hour: "1.00"',
            ]
    return "\n".join(lines) + "\n"


async def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start")
            await asyncio.sleep(0.2)


async def main() -> None:
    configure_logging("warning")
    # The sandbox runs in its own process, as the real API would: its work must not delay
    # the client's requests in a shared event loop.
    folder = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    (folder / "scenario.yaml").write_text(scenario())
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
        [
            sys.executable,
            "-m",
            "service.cli",
            "sandbox",
            "--scenario",
            str(folder / "scenario.yaml"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        await wait_until_up(f"{root}/_sandbox/stats")
        settings = TikTokSettings(
            base_url=f"{root}/open_api/v1.3",
            access_token=SecretStr("bench-token"),
            qps=QPS,
            page_size=PAGE,
        )
        async with TikTokClient(settings, budget=QpsBudget(QPS, margin_s=MARGIN_S)) as api:
            centers = [f"70{c}" for c in range(CENTERS)]
            with Timer() as cycle:
                results = await asyncio.gather(*(api.advertiser_balances(c) for c in centers))
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{root}/_sandbox/stats")).json()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    rows = sum(len(r) for r in results)
    requests = CENTERS * math.ceil(PER_CENTER / PAGE)
    bound = requests / QPS
    throttled = stats["throttled"]
    ratio = cycle.seconds / bound
    assert rows == CENTERS * PER_CENTER, rows
    record(
        "poll cycle, balances (10,000 advertisers, 5 BCs, QPS 10)",
        f"{cycle.seconds:.1f} s for {requests} requests (bound {bound:.1f} s); "
        f"{throttled} replies 40100; max {stats['max_requests_per_second']} requests in 1 s",
        f"{ratio:.2f} x bound",
        "<= 1.15 x bound, 0 x 40100",
        ratio <= 1.15 and throttled == 0,
    )


if __name__ == "__main__":
    asyncio.run(main())
