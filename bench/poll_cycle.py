"""Benchmark 3: one full poll cycle of balances + cost at the API's QPS bound.

The sandbox (its own process, as the real API is) serves 10,000 advertisers in 5 business
centers with a QPS limit of 10; the client's budget is 10 too. One cycle = every page of
``/advertiser/balance/get/`` and every page of ``/bc/account/cost/get/`` for the poller's
default spend lookback (``poll.spend_lookback_days`` days, one day per query, plus the one
``/bc/balance/get/`` the cost poller asks for the API's date) for every business center. The
real ``BalancePoller`` and ``CostPoller`` run it, one job per (source, business center), all at
once with the scheduler's 50 ms stagger of first runs, through one ``TikTokClient`` and one
``ApiBudget``; snapshots go to an in-memory publisher. Bound = requests needed (the replies
with code 0, counted by the sandbox) / QPS; target: cycle time <= 1.15 x bound and no 40100
reply.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.common import Timer, record, wait_until_up
from config.settings import PollSettings, TikTokSettings
from service.logs import configure_logging
from tests.support.servers import free_port
from workers.api_budget import ApiBudget, RateLimits
from workers.contract.snapshots import Snapshot
from workers.poller import BalancePoller, PollResult, SourcePoller
from workers.spend_poller import CostPoller
from workers.tiktok import TikTokClient

CENTERS = 5
PER_CENTER = 2_000
QPS = 10
PAGE = 50
# What the poller uses (tiktok.qps_margin_s): absorbs send-time jitter at the API's clock.
MARGIN_S = TikTokSettings().qps_margin_s
# The cost poller's default window: one query per UTC day.
LOOKBACK_DAYS = PollSettings().spend_lookback_days
# The scheduler spreads the first runs of its jobs this far apart (workers.poller.schedule).
STAGGER_S = 0.05


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


class Collected:
    """A publisher that keeps count of what the pollers would have put on the stream."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    async def publish(self, snapshots: list[Snapshot]) -> int:
        self.kinds.update(snapshot.kind for snapshot in snapshots)
        return len(snapshots)


async def reject(
    *, source: str, reason: str, payload: bytes, error: str, entry_id: str = ""
) -> None:
    raise AssertionError(f"{source} rejected {entry_id}: {reason}: {error}")


def staggered(
    poller: SourcePoller, bc_id: str, delay_s: float
) -> Callable[[], Awaitable[PollResult | None]]:
    async def job() -> PollResult | None:
        await asyncio.sleep(delay_s)
        return await poller.poll(bc_id)

    return job


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
    published = Collected()
    try:
        await wait_until_up(f"{root}/_sandbox/stats")
        settings = TikTokSettings(
            base_url=f"{root}/open_api/v1.3",
            access_token=SecretStr("bench-token"),
            qps=QPS,
            page_size=PAGE,
        )
        async with httpx.AsyncClient() as http:
            before: dict[str, Any] = (await http.get(f"{root}/_sandbox/stats")).json()
        budget = ApiBudget(RateLimits(QPS), margin_s=MARGIN_S)
        async with TikTokClient(settings, budget=budget) as api:
            pollers: list[SourcePoller] = [
                BalancePoller(api, published, reject=reject),
                CostPoller(api, published, reject=reject, lookback_days=LOOKBACK_DAYS),
            ]
            centers = [f"70{c}" for c in range(CENTERS)]
            jobs = [
                staggered(poller, bc_id, STAGGER_S * index)
                for index, (poller, bc_id) in enumerate(
                    (poller, bc_id) for poller in pollers for bc_id in centers
                )
            ]
            with Timer() as cycle:
                results = await asyncio.gather(*(job() for job in jobs))
        async with httpx.AsyncClient() as http:
            stats: dict[str, Any] = (await http.get(f"{root}/_sandbox/stats")).json()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    if any(result is None for result in results):
        raise SystemExit("a poll failed (see the log above)")
    by_path = Counter(stats["requests_by_path"]) - Counter(before["requests_by_path"])
    by_code = Counter(stats["replies_by_code"]) - Counter(before["replies_by_code"])
    by_path = Counter({p: n for p, n in by_path.items() if "/_sandbox/" not in p})
    sent = sum(by_path.values())
    needed = by_code["0"]
    pages = math.ceil(PER_CENTER / PAGE)
    expected = CENTERS * (pages + 1 + LOOKBACK_DAYS * pages)
    assert needed == expected, (needed, expected, dict(by_path))
    assert published.kinds["account_balance"] == CENTERS * PER_CENTER, published.kinds
    assert published.kinds["daily_spend"] == CENTERS * PER_CENTER * LOOKBACK_DAYS, published.kinds
    bound = needed / QPS
    throttled = stats["throttled"] - before["throttled"]
    ratio = cycle.seconds / bound
    paths = ", ".join(f"{n} {p}" for p, n in sorted(by_path.items()))
    print(f"requests sent: {paths}; client attempts {budget.granted}", flush=True)
    record(
        f"poll cycle, balances + cost ({LOOKBACK_DAYS} days) "
        f"({CENTERS * PER_CENTER:,} advertisers, {CENTERS} BCs, QPS {QPS})",
        f"{cycle.seconds:.1f} s for {needed} requests needed (bound {bound:.1f} s; "
        f"{CENTERS * pages} balance pages, {CENTERS * LOOKBACK_DAYS * pages} cost pages, "
        f"{CENTERS} BC balance); {sent} sent; {throttled} replies 40100; "
        f"max {stats['max_requests_per_second']} requests in 1 s",
        f"{ratio:.2f} x bound",
        "<= 1.15 x bound, 0 x 40100",
        ratio <= 1.15 and throttled == 0,
    )


if __name__ == "__main__":
    asyncio.run(main())
