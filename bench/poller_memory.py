"""Poller memory: a `creditwatch poller` process's RSS through its first sweeps of 10,000 accounts.

Sizes the Kubernetes kit's poller resources (deploy/kubernetes/base/poller-deployment.yaml).
The sandbox of benchmark 3 (10,000 advertisers in 5 business centers, QPS 10) runs in its own
process; one real `creditwatch poller` polls it with the default sources and intervals and the
Basic tier's budget, publishing to Redis. Its RSS is sampled every 5 s until the first cost
sweep (7 days for every account) has been published and a minute more: a cost poll holds its
days until it publishes them, which is the peak. Target: the peak within 3/4 of the kit's
512 MiB limit. Not part of `make bench` (about 8 minutes, mostly waiting on the API's budget).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from redis.asyncio import Redis

from bench.common import record, redis_url, wait_until_up
from bench.poll_cycle import CENTERS, PER_CENTER, scenario
from config.settings import PollSettings
from tests.support.servers import free_port

LIMIT_MIB = 512  # the kit's memory limit for a poller
TARGET_MIB = LIMIT_MIB * 3 / 4
SAMPLE_S = 5.0
AFTER_SWEEP_S = 60.0
WITHIN_S = 900.0
ACCOUNTS = CENTERS * PER_CENTER
# Balances once, then a daily-spend snapshot per account and day of the lookback.
FIRST_SWEEPS = ACCOUNTS * (1 + PollSettings().spend_lookback_days)


def _poller_env(api: str, redis: str, prefix: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
    return env | {
        "CREDITWATCH_TIKTOK__BASE_URL": f"{api}/open_api/v1.3",
        "CREDITWATCH_TIKTOK__ACCESS_TOKEN": "bench-token",
        "CREDITWATCH_TIKTOK__BC_IDS": ",".join(f"70{center}" for center in range(CENTERS)),
        "CREDITWATCH_REDIS_URL": redis,
        "CREDITWATCH_STREAMS__PREFIX": prefix,
        "CREDITWATCH_API__PORT": str(port),
        "CREDITWATCH_LOG_LEVEL": "error",
        "CREDITWATCH_DATA_DIR": str(data_dir),
    }


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    (folder / "scenario.yaml").write_text(scenario())
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    command = [sys.executable, "-m", "service.cli"]
    sandbox = subprocess.Popen(  # noqa: ASYNC220 - started once, before sampling
        [*command, "sandbox", "--scenario", str(folder / "scenario.yaml"), "--port", str(api_port)],
        stdout=subprocess.DEVNULL,
    )
    prefix = f"cwbench-{uuid.uuid4().hex[:8]}"
    samples: list[tuple[float, int, int]] = []
    with redis_url() as url:
        redis = Redis.from_url(url)
        try:
            await wait_until_up(f"{api}/_sandbox/stats")
            port = free_port()
            poller = subprocess.Popen(  # noqa: ASYNC220 - started once, before sampling
                [*command, "poller"],
                env=_poller_env(api, url, prefix, port, folder / "data"),
                stdout=subprocess.DEVNULL,
            )
            try:
                await wait_until_up(
                    f"http://127.0.0.1:{port}/healthz", alive=lambda: poller.poll() is None
                )
                process = psutil.Process(poller.pid)
                start = time.monotonic()
                swept_at: float | None = None
                while time.monotonic() - start < WITHIN_S:
                    await asyncio.sleep(SAMPLE_S)
                    published = await redis.xlen(f"{prefix}:snapshots")
                    samples.append((time.monotonic() - start, process.memory_info().rss, published))
                    if swept_at is None and published >= FIRST_SWEEPS:
                        swept_at = time.monotonic()
                    if swept_at is not None and time.monotonic() - swept_at >= AFTER_SWEEP_S:
                        break
            finally:
                poller.terminate()
                poller.wait(timeout=30)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)
            keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()

    mib = 2**20
    peak = max(rss for _, rss, _ in samples)
    first = samples[0][1]
    last_s, last_rss, published = samples[-1]
    swept = published >= FIRST_SWEEPS
    record(
        f"poller memory ({ACCOUNTS:,} accounts, {CENTERS} BCs, QPS 10, default sources)",
        f"RSS {first / mib:.0f} MiB after start, peak {peak / mib:.0f} MiB, "
        f"{last_rss / mib:.0f} MiB at {last_s:.0f} s; {published:,} snapshots published "
        f"(first balance + cost sweeps {'done' if swept else 'NOT done'}: {FIRST_SWEEPS:,}); "
        "shared, loaded 2-core machine",
        f"{peak / mib / LIMIT_MIB:.2f} (peak / {LIMIT_MIB} MiB limit)",
        f"peak <= {TARGET_MIB:.0f} MiB, first sweeps done",
        swept and peak / mib <= TARGET_MIB,
        note="" if swept else "the first sweeps did not finish in time",
    )


if __name__ == "__main__":
    asyncio.run(main())
