"""Benchmark 5: memory of the service role and of Redis with 100,000 tracked advertisers.

The service role runs as its own process (``python -m service.cli service``, settings from
``CREDITWATCH_*`` variables: its own stream prefix, the API on a free port, no console
receiver, log level warning). Balance snapshots of 100,000 advertisers (``POLLS`` polls each,
5 minutes of API time apart, balances well above the low line) go on its snapshot stream;
once the detectors' group has read and acknowledged everything, the process's resident set
is read from ``/proc/<pid>/status``: ``VmRSS`` now and ``VmHWM`` (its peak), against the
200 MB target.

Redis per tracked advertiser: ``INFO memory`` ``used_memory`` before the fill and after the
drain (service stopped, the snapshot and alerts streams deleted first, so only the state the
service keeps is left), divided by the advertisers. As a cross-check that other users of the
same Redis cannot skew, the ``MEMORY USAGE`` of every key under the prefix is summed too; the
larger of the two is held against the 2 KB target. Also shown: the mean ``MEMORY USAGE`` of a
sample of state keys (``<prefix>:state:<id>``) and each advertiser's share of the ``fresh``
hash.

A few polls are not steady state: an ``AccountState`` keeps 24 h of balance points and, with
the cost and report sources on, 120 days of spend. So ``STEADY`` more advertisers (ids of
their own) go through the same service run at steady state: 120 days of spend from both
``bc_cost`` and ``report`` (the backfill), then a day of 5-minute balance polls with an
hourly re-read of the last 3 days from both sources (revised figures). Their Redis share is
the mean ``MEMORY USAGE`` of their state keys plus their share of the per-advertiser hashes
(``fresh``, the state versions), held against the 2 KB target. One such advertiser is also
folded in process through ``service.detect.evaluate`` and its encoded size reported.

``BENCH_MEMORY_ADVERTISERS`` (default 100,000) makes quick trial runs possible;
``BENCH_MEMORY_STEADY`` (default 300) the steady-state ones; ``BENCH_MEMORY_TIMEOUT_S`` bounds
the wait for the detectors to drain (default 900 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import chain
from pathlib import Path
from statistics import mean
from typing import Any

from redis.asyncio import Redis

from bench.common import record, redis_url, wait_until_up
from config.settings import ENV_PREFIX, DetectSettings, StreamSettings
from service.detect.evaluate import evaluate
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState, encode_state
from service.logs import configure_logging
from tests.support.servers import free_port
from tests.support.snapshots import grant_snapshot
from workers.contract.snapshots import AccountBalanceSnapshot, DailySpendSnapshot

ROOT = Path(__file__).resolve().parent.parent
ADVERTISERS = int(os.environ.get("BENCH_MEMORY_ADVERTISERS", "100000"))
# Balance polls per advertiser on the stream: every one is a real state write.
POLLS = 2
# A full day of 5-minute polls: what an account's balance history grows to.
DAY_POLLS = 288
STEADY = int(os.environ.get("BENCH_MEMORY_STEADY", "300"))
SPEND_DAYS = 120
# The cost and report pollers re-read the last days every hour: lagging figures are revised.
REREAD_DAYS = 3
REREAD_EVERY = 12
SOURCES = ("bc_cost", "report")
STEP = timedelta(minutes=5)
START = datetime(2026, 11, 1, tzinfo=UTC)
CENTERS = 20
DRAIN_TIMEOUT_S = float(os.environ.get("BENCH_MEMORY_TIMEOUT_S", "900"))
CHUNK = 5000
SAMPLE = 100
MB = 1024 * 1024
KB = 1024
RSS_TARGET_MB = 200
REDIS_TARGET_BYTES = 2 * KB
GROUP = "detectors"


def advertiser_id(n: int) -> str:
    """19 digits, as TikTok's are: key length counts in Redis."""
    return str(7_300_000_000_000_000_000 + n)


def snapshot(n: int, poll: int) -> AccountBalanceSnapshot:
    """Advertiser ``n`` at ``poll``: grant spent slowly from 1,000, far above its 20 % line."""
    grant = Decimal("1000.00") - Decimal("0.37") * poll - Decimal(n % 97)
    return grant_snapshot(
        str(7_200_000_000_000_000_000 + n % CENTERS),
        advertiser_id(n),
        grant,
        START + STEP * poll,
        name=f"Shop number {n}",
        valid_cash=Decimal("250.00"),
    )


def spend(n: int, source: str, day: date, observed_at: datetime) -> DailySpendSnapshot:
    """Advertiser ``n``'s spend on ``day`` as read at ``observed_at`` (later reads revise it)."""
    revision = Decimal(int((observed_at - START).total_seconds()) // 3600) / 100
    grant = Decimal("41.37") + Decimal(day.toordinal() % 13) + revision
    cash = Decimal("3.10") + Decimal(day.toordinal() % 5)
    return DailySpendSnapshot(
        source=source,
        bc_id=str(7_200_000_000_000_000_000 + n % CENTERS),
        advertiser_id=advertiser_id(n),
        day=day,
        cash_amount=cash,
        grant_amount=grant,
        total=cash + grant,
        currency="USD",
        observed_at=observed_at,
    )


def steady_snapshots(advertisers: range) -> Iterator[AccountSnapshot]:
    """Steady state for ``advertisers``, in the order the pollers publish: the 120-day
    backfill of both sources, then poll by poll, with the hourly re-reads."""
    for source in SOURCES:
        for back in range(SPEND_DAYS, 0, -1):
            for n in advertisers:
                yield spend(n, source, (START - timedelta(days=back)).date(), START)
    for poll in range(DAY_POLLS):
        at = START + STEP * poll
        for n in advertisers:
            yield snapshot(n, poll)
        if poll % REREAD_EVERY == 0:
            for source in SOURCES:
                for back in range(REREAD_DAYS):
                    for n in advertisers:
                        yield spend(n, source, (at - timedelta(days=back)).date(), at)


def steady_id(k: int) -> int:
    """The ``k``-th steady-state advertiser: numbered after the two-poll ones."""
    return ADVERTISERS + k


def payload_chunks() -> Iterator[list[bytes]]:
    """Every advertiser's poll 0, then every advertiser's poll 1, ..., then the steady-state
    advertisers' day, in chunks for XADD."""
    chunk: list[bytes] = []
    two_polls = (snapshot(n, poll) for poll in range(POLLS) for n in range(ADVERTISERS))
    steady = steady_snapshots(range(steady_id(0), steady_id(STEADY)))
    for item in chain(two_polls, steady):
        chunk.append(item.to_json())
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def fill(redis: Redis, stream: str) -> int:
    written = 0
    for chunk in payload_chunks():
        async with redis.pipeline(transaction=False) as pipe:
            for item in chunk:
                pipe.xadd(stream, {"__data__": item})
            await pipe.execute()
        written += len(chunk)
    return written


def day_state() -> AccountState:
    """One advertiser's steady state (the 120-day backfill, a day of polls), in process."""
    settings = DetectSettings()
    ledger = AccountLedger(credits=(), programs=())
    state: AccountState | None = None
    for item in steady_snapshots(range(1, 2)):
        result = evaluate(state, item, ledger, settings)
        if result is not None:
            state = result.state
    assert state is not None
    return state


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0]) * 1024  # reported in kB
    return values["VmRSS"], values["VmHWM"]


async def used_memory(redis: Redis) -> int:
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"])


async def memory_usage(redis: Redis, keys: list[bytes]) -> list[int]:
    """``MEMORY USAGE key SAMPLES 0`` (every element counted) of each key, pipelined."""
    sizes: list[int] = []
    for start in range(0, len(keys), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 1000]:
                pipe.execute_command("MEMORY USAGE", key, "SAMPLES", "0")
            sizes += [int(size or 0) for size in await pipe.execute()]
    return sizes


async def group_progress(redis: Redis, stream: str) -> tuple[bool, int]:
    """(drained, entries acknowledged so far) of the detectors' group."""
    info = await redis.xinfo_stream(stream)
    for group in await redis.xinfo_groups(stream):
        if group["name"] == GROUP.encode():
            done = bool(
                group["last-delivered-id"] == info["last-generated-id"] and group["pending"] == 0
            )
            read = int(group.get("entries-read") or 0) - int(group["pending"])
            return done, read
    return False, 0


def service_env(url: str, prefix: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            f"{ENV_PREFIX}REDIS_URL": url,
            f"{ENV_PREFIX}STREAMS__PREFIX": prefix,
            f"{ENV_PREFIX}STREAMS__CONSUMER": "bench-memory",
            f"{ENV_PREFIX}API__HOST": "127.0.0.1",
            f"{ENV_PREFIX}API__PORT": str(port),
            f"{ENV_PREFIX}NOTIFY__CONSOLE": "false",
            f"{ENV_PREFIX}LOG_LEVEL": "warning",
        }
    )
    return env


async def wait_drained(redis: Redis, stream: str, total: int, pid: int, started: float) -> None:
    deadline = started + DRAIN_TIMEOUT_S
    last_print = 0.0
    while True:
        done, read = await group_progress(redis, stream)
        if done:
            return
        now = time.perf_counter()
        if now > deadline:
            raise SystemExit(
                f"the detectors did not drain within {DRAIN_TIMEOUT_S:.0f} s: "
                f"{read:,} of {total:,} snapshots acknowledged"
            )
        if now - last_print >= 5:
            rss, _ = proc_memory(pid)
            rate = read / max(now - started, 1e-9)
            print(
                f"  {read:,}/{total:,} snapshots acknowledged ({rate:,.0f}/s), "
                f"service RSS {rss / MB:.0f} MB",
                flush=True,
            )
            last_print = now
        await asyncio.sleep(0.2)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def delete_prefix(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])


async def main() -> None:
    configure_logging("warning")
    state = day_state()
    day_bytes = encode_state(state)
    print(
        f"steady state in process: {len(day_bytes):,} bytes encoded "
        f"({len(state.history)} balance points, "
        f"{sum(map(len, state.spend.values()))} spend days, "
        f"{sum(map(len, state.rolled.values()))} rolled-up spans)",
        flush=True,
    )
    with redis_url() as url:
        redis = Redis.from_url(url)
        prefix = f"cwbench-mem-{uuid.uuid4().hex[:8]}"
        streams = StreamSettings(prefix=prefix)
        port = free_port()
        before = await used_memory(redis)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli",
            "service",
            cwd=ROOT,
            env=service_env(url, prefix, port),
        )
        try:
            await wait_until_up(
                f"http://127.0.0.1:{port}/healthz", alive=lambda: process.returncode is None
            )
            idle_rss, _ = proc_memory(process.pid)
            print(f"service up (pid {process.pid}), idle RSS {idle_rss / MB:.0f} MB", flush=True)

            started = time.perf_counter()
            total = await fill(redis, streams.snapshots)
            print(
                f"wrote {total:,} snapshots ({ADVERTISERS:,} advertisers x {POLLS} polls, "
                f"{STEADY:,} at steady state) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            await wait_drained(redis, streams.snapshots, total, process.pid, started)
            drain_s = time.perf_counter() - started
            print(f"drained in {drain_s:.1f} s ({total / drain_s:,.0f} snapshots/s)", flush=True)
            # Let the process settle (the notifiers, the deliveries of any alert) first.
            await asyncio.sleep(2)
            rss, peak = proc_memory(process.pid)
            await stop(process)
            if process.returncode not in (0, -signal.SIGTERM):
                print(f"warning: the service exited with code {process.returncode}", flush=True)

            # Redis: only what the service keeps is left once both streams are gone.
            await redis.delete(streams.snapshots, streams.alerts)
            after = await used_memory(redis)
            state_keys = [k async for k in redis.scan_iter(match=f"{prefix}:state:*", count=10_000)]
            fresh_key = streams.key("fresh")
            tracked = int(await redis.hlen(fresh_key))
            expected = ADVERTISERS + STEADY
            if len(state_keys) != expected or tracked != expected:
                raise SystemExit(
                    f"expected {expected:,} tracked advertisers: {len(state_keys):,} state "
                    f"keys, {tracked:,} in the fresh hash"
                )
            all_keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
            prefix_bytes = sum(await memory_usage(redis, all_keys))
            state_bytes = sum(await memory_usage(redis, state_keys))
            step = ADVERTISERS // SAMPLE or 1
            sample = [streams.key("state", advertiser_id(n)) for n in range(0, ADVERTISERS, step)]
            sample_sizes = await memory_usage(redis, [k.encode() for k in sample[:SAMPLE]])
            state_lengths = [int(await redis.strlen(k)) for k in sample[:SAMPLE]]
            steady_keys = [
                streams.key("state", advertiser_id(steady_id(k))).encode() for k in range(STEADY)
            ]
            steady_sizes = await memory_usage(redis, steady_keys)
            steady_lengths = [int(await redis.strlen(k)) for k in steady_keys]
            (fresh_bytes,) = await memory_usage(redis, [fresh_key.encode()])
            day_key = streams.key("bench", "day-state")
            await redis.set(day_key, day_bytes)
            (day_redis_bytes,) = await memory_usage(redis, [day_key.encode()])
        finally:
            await stop(process)
            await delete_prefix(redis, prefix)
            await redis.aclose()

    delta_per = (after - before) / tracked
    keys_per = prefix_bytes / tracked
    if abs(delta_per - keys_per) > 0.25 * keys_per:
        print(
            f"note: used_memory delta ({delta_per:,.0f} B/advertiser) and the keys under the "
            f"prefix ({keys_per:,.0f} B/advertiser) disagree: is someone else using this Redis?",
            flush=True,
        )
    # Every key that is not a state (the fresh hash, the state versions, business centers)
    # is shared out evenly over the tracked advertisers.
    shared_per = (prefix_bytes - state_bytes) / tracked
    two_polls = mean(sample_sizes) + shared_per
    steady = mean(steady_sizes) + shared_per
    per_advertiser = max(two_polls, steady)
    ratio = peak / (RSS_TARGET_MB * MB)
    rss_ok = peak < RSS_TARGET_MB * MB
    redis_ok = per_advertiser <= REDIS_TARGET_BYTES
    notes = []
    if not rss_ok:
        notes.append(f"peak RSS {peak / MB:.0f} MB")
    if not redis_ok:
        notes.append(f"Redis {per_advertiser / KB:.2f} KB/advertiser at steady state")
    record(
        f"memory ({ADVERTISERS:,} advertisers x {POLLS} polls; {STEADY:,} at steady state)",
        f"service RSS {rss / MB:.0f} MB (peak {peak / MB:.0f} MB, idle {idle_rss / MB:.0f} MB) "
        f"with {tracked:,} advertisers; Redis at steady state (120 days of spend from "
        f"bc_cost and report, a day of {DAY_POLLS} 5-min polls, hourly re-reads) "
        f"{steady / KB:.2f} KB/advertiser (state key mean {mean(steady_sizes):,.0f} B for "
        f"{mean(steady_lengths):,.0f} B of MessagePack, shared keys {shared_per:,.0f} B of "
        f"which fresh hash {fresh_bytes / tracked:,.0f} B); after two polls "
        f"{two_polls / KB:.2f} KB/advertiser (state key mean {mean(sample_sizes):,.0f} B for "
        f"{mean(state_lengths):,.0f} B); used_memory delta {delta_per:,.0f} B and keys under "
        f"prefix {keys_per:,.0f} B per tracked advertiser; in process the same steady state "
        f"is {len(day_bytes):,} B ({day_redis_bytes:,} B in Redis)",
        f"{ratio:.2f} (peak RSS / 200 MB)",
        "RSS < 200 MB, Redis <= 2 KB/advertiser at steady state",
        rss_ok and redis_ok,
        note="; ".join(notes),
    )


if __name__ == "__main__":
    asyncio.run(main())
