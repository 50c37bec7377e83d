"""Benchmark 7: delivery under alert load, creditwatch side by side with Prometheus Alertmanager.

One run, the same machine, the same receiver, the same load, one phase after the other:

0. **The receiver alone** (``webhook_sink``, its own process): signed POSTs on 16
   keep-alive connections as fast as it answers, so its capacity is known to be above the
   load.
1. **Alertmanager** (Debian's ``prometheus-alertmanager``, started here on a free port, no
   cluster): route ``group_by: [group]``, ``group_wait: 0s``, ``group_interval: 1s``, a
   webhook receiver at the sink. 240 probe alerts, each a group of its own, are POSTed to
   ``/api/v2/alerts``, one in each 50 ms slot at a random moment of it (the load's
   chunks come every 50 ms too: see ``probe_slots``); a sample runs from just before its
   POST to its arrival at the sink. Idle, then while a child process POSTs 1,000 alerts/s
   (50 every 50 ms), each a new alert of one of 5,000 other groups, so every group has news
   to notify.
2. **creditwatch**: the real service role (``service_role``: notifier, groups, durable
   deliveries, sender), first in one child process, then in one per core (replicas in the
   same consumer groups, as Running at scale describes; Alertmanager is one process on every
   core), with a signed webhook receiver at the sink,
   ``group_by: [advertiser_id]``, ``group_wait`` and ``group_interval`` 0. The load is
   *injected on the alerts stream exactly as the detector writes it* (FastStream's envelope
   from ``stream_entry``, pipelined ``XADD``): 1,000 transitions/s (50 every 50 ms) for
   5,000 other advertisers, each firing, then resolved, then firing again (a new episode),
   every one delivered. 240 probe transitions (``credit.exhausted`` firing, an advertiser
   each) are XADDed in the same slots; a sample runs from just before its XADD to the arrival
   of its signed webhook. Idle, then under the load.

For creditwatch every message is checked at the sink: signature verified, ``webhook-id``
counted (none twice), and every transition injected arrived (none lost); afterwards every
delivery document in Redis says ``delivered`` and none is left queued (durable). The
sender's sustained rate is the loaded phase's webhooks over the time from the load's start to
the last one's arrival (the load's own rate when delivery keeps up). Each side's CPU under
load is read from ``/proc`` (psutil): Alertmanager's per notification, the service process's
per webhook, from the load's start to the last arrival (steadier than a p99 on a machine whose
speed moves, and what decides how close to busy the process runs), and the Redis server's per
webhook from ``INFO cpu`` (the load's own XADDs included). The detection step is
not in this benchmark (benchmark 4 measures snapshot -> webhook).

Times are ``time.monotonic()`` in every process (CLOCK_MONOTONIC is machine-wide on Linux).
Target: creditwatch's p99 under load <= Alertmanager's p99 under the same load.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import psutil
from redis.asyncio import Redis
from standardwebhooks import Webhook

from bench.alert_latency import run_service, service_settings, wait_for
from bench.common import Load, paced_load, percentile, record, redis_url
from bench.webhook_sink import PROBE_LABEL, start_sink
from config.settings import StreamSettings
from service.connections import RedisTarget
from service.deliver.deliveries import Delivery
from service.logs import configure_logging
from workers.contract.alerts import AlertTransition, episode_id
from workers.contract.envelope import stream_entry

LOAD_PER_S = 1_000
CHUNK = 50  # alerts per POST / transitions per pipeline, every CHUNK / LOAD_PER_S seconds
GROUPS = 5_000
PROBES = int(os.environ.get("BENCH_PROBES", "240"))
PROBE_EVERY_S = 0.05
WARMUP_S = 3.0  # load before the first probe
PROBE_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 300.0  # every injected transition delivered, the probes among them
ALONE_REQUESTS = 4_000
ALONE_CONNECTIONS = 16
AM_POSTS_AT_ONCE = 8
# Service processes of the second creditwatch run: one per core, as Alertmanager (Go) uses
# every core from one process; the first run is a single process.
REPLICAS = int(os.environ.get("BENCH_REPLICAS", str(os.cpu_count() or 1)))

BC_ID = "7001"
LOAD_BASE = 750_000
PROBE_BASE = {"idle": 760_000, "loaded": 761_000}
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # starts_at of the load's first episodes (any date)

INSTALL_HINT = (
    "benchmark 7 needs Prometheus Alertmanager: `apt-get install prometheus-alertmanager` "
    "(Debian; `make bench` tries that when run as root), or an `alertmanager` binary from "
    "https://prometheus.io/download/ on PATH"
)


@dataclass(frozen=True)
class Latencies:
    """One phase's probe latencies (ms, sorted) and how many probes never arrived."""

    ms: list[float]
    missing: int

    @classmethod
    def of(cls, sent: dict[str, float], arrived: dict[str, Any]) -> Latencies:
        ms = sorted(
            (float(arrived[probe]) - at) * 1000 for probe, at in sent.items() if probe in arrived
        )
        return cls(ms, len(sent) - len(ms))

    @property
    def p99(self) -> float:
        return percentile(self.ms, 99) if not self.missing else math.inf

    def text(self) -> str:
        p50, p95, p99 = (percentile(self.ms, p) for p in (50, 95, 99))
        worst = self.ms[-1] if self.ms else math.inf
        lost = f", {self.missing} never arrived" if self.missing else ""
        return (
            f"p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} / max {worst:.1f} ms "
            f"({len(self.ms)}/{len(self.ms) + self.missing}{lost})"
        )


# --- the sink --------------------------------------------------------------------------


class SinkClient:
    """This process's view of the sink: its URLs, its stats, a reset between phases."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._http = httpx.AsyncClient(base_url=self.base, timeout=30)

    async def stats(self) -> dict[str, Any]:
        reply = await self._http.get("/stats")
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()
        return result

    async def reset(self) -> None:
        (await self._http.post("/reset")).raise_for_status()

    async def wait(self, done: Any, timeout_s: float) -> dict[str, Any]:
        """Stats once ``done(stats)`` holds or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.stats()
            if done(stats) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.25)

    async def aclose(self) -> None:
        await self._http.aclose()


def signed_headers(signer: Webhook, msg_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
    }


async def sink_alone(sink: SinkClient, port: int, secret: str) -> float:
    """Signed POSTs on ALONE_CONNECTIONS keep-alive connections; returns verified requests/s.

    Written as bytes on raw sockets: an HTTP client in Python (httpx here) would be slower
    than the sink, and measure itself."""
    signer = Webhook(secret)
    body = json.dumps({"type": "bench.alone", "data": {"n": 0}})
    headers = signed_headers(signer, "alone", body)
    head = f"POST /alone HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}\r\n"
    request = head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + body

    async def send(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request.encode())
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")  # a 204: no body follows
        finally:
            writer.close()

    begin = time.monotonic()
    per_connection = ALONE_REQUESTS // ALONE_CONNECTIONS
    await asyncio.gather(*(send(per_connection) for _ in range(ALONE_CONNECTIONS)))
    elapsed = time.monotonic() - begin
    stats = await sink.stats()
    await sink.reset()
    return float(stats["alone"]) / elapsed


# --- Alertmanager ----------------------------------------------------------------------


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alertmanager_config(hook_url: str) -> str:
    return f"""\
route:
  receiver: sink
  group_by: [group]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: {hook_url}
        send_resolved: false
"""


@contextlib.asynccontextmanager
async def alertmanager(hook_url: str) -> Any:
    """Alertmanager on a free port with its own storage; yields its base URL and pid."""
    binary = alertmanager_binary()
    with tempfile.TemporaryDirectory(prefix="cw-bench-am-") as workdir:
        config = Path(workdir) / "alertmanager.yml"
        config.write_text(alertmanager_config(hook_url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient() as http:
                while True:
                    if process.poll() is not None:
                        err = process.stderr.read().decode() if process.stderr else ""
                        raise SystemExit(f"alertmanager exited: {err[-500:]}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{url}/-/ready")).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise SystemExit("alertmanager did not get ready within 60 s")
                    await asyncio.sleep(0.2)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def am_alert(labels: dict[str, str]) -> dict[str, Any]:
    return {"labels": labels, "annotations": {}, "startsAt": datetime.now(UTC).isoformat()}


async def am_load(url: str, started: Event, stop: Event) -> tuple[int, float]:
    """LOAD_PER_S new alerts/s over GROUPS groups until ``stop``; (posted, seconds).

    Each POST of CHUNK alerts leaves on schedule, up to AM_POSTS_AT_ONCE at a time: under
    load one answer can take longer than the 50 ms between two POSTs."""
    at_once = asyncio.Semaphore(AM_POSTS_AT_ONCE)
    limits = httpx.Limits(max_connections=AM_POSTS_AT_ONCE)

    async def post(http: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        try:
            (await http.post("/api/v2/alerts", json=batch)).raise_for_status()
        finally:
            at_once.release()

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        posts: set[asyncio.Task[None]] = set()

        async def send(first: int) -> None:
            batch = [
                am_alert(
                    {"alertname": "BenchLoad", "group": f"g{(first + k) % GROUPS}", "seq": str(n)}
                )
                for k, n in enumerate(range(first, first + CHUNK))
            ]
            await at_once.acquire()
            task = asyncio.create_task(post(http, batch))
            posts.add(task)
            task.add_done_callback(posts.discard)

        begin = time.monotonic()
        sent = await paced_load(send, per_s=LOAD_PER_S, chunk=CHUNK, started=started, stop=stop)
        await asyncio.gather(*posts)
        return sent, time.monotonic() - begin


async def probe_slots() -> AsyncIterator[int]:
    """Each probe's index at its moment: one probe per PROBE_EVERY_S slot, at a random point
    of its slot (the same points on both sides).

    The load's chunks leave every 50 ms too, so probes spaced exactly 50 ms apart all met the
    chunks at one phase, drawn when the run started: the same code measured a loaded p99 of
    4.9 ms in one run (every probe between two chunks) and 23.7 ms in the next (every probe
    behind one). Spread over the slot, the probes sample every phase in every run.
    """
    rng = random.Random(PROBES)
    begin = time.monotonic()
    for index in range(PROBES):
        delay = begin + (index + rng.random()) * PROBE_EVERY_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield index


async def am_probes(url: str, phase: str) -> dict[str, float]:
    """PROBES alerts, a group each, one per slot; probe -> when its POST began."""
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async for index in probe_slots():
            probe = f"am-{phase}-{index}"
            alert = am_alert({"alertname": "BenchProbe", "group": probe, PROBE_LABEL: probe})
            sent[probe] = time.monotonic()
            (await http.post("/api/v2/alerts", json=[alert])).raise_for_status()
    return sent


# --- creditwatch -----------------------------------------------------------------------


def transition(
    advertiser: int, kind: str, *, episode: int, firing: bool, now: datetime
) -> AlertTransition:
    starts_at = EPOCH + timedelta(seconds=episode)
    return AlertTransition(
        alert_id=episode_id(kind, str(advertiser), starts_at),
        kind=kind,
        status="firing" if firing else "resolved",
        severity="critical" if kind == "credit.exhausted" else "warning",
        advertiser_id=str(advertiser),
        advertiser_name=f"Shop {advertiser}",
        bc_id=BC_ID,
        currency="USD",
        summary=f"bench {kind}",
        values={"balance": "0.00"},
        starts_at=starts_at,
        ends_at=None if firing else now,
        observed_at=now,
    )


def load_transition(n: int, now: datetime) -> AlertTransition:
    """The n-th of the load: advertiser n mod GROUPS, firing, resolved, firing, ..."""
    sweep = n // GROUPS
    return transition(
        LOAD_BASE + n % GROUPS, "credit.low", episode=sweep // 2, firing=sweep % 2 == 0, now=now
    )


async def inject(redis: Redis, streams: StreamSettings, transitions: list[AlertTransition]) -> None:
    """Onto the alerts stream as the detector writes them (state.py: envelope, XADD)."""
    async with redis.pipeline(transaction=False) as pipe:
        for one in transitions:
            entry = await stream_entry(one.to_json(), one.transition_id)
            pipe.xadd(streams.alerts, entry, maxlen=streams.maxlen, approximate=True)
        await pipe.execute()


async def cw_load(
    url: str, streams: StreamSettings, started: Event, stop: Event
) -> tuple[int, float]:
    """LOAD_PER_S transitions/s until ``stop``; (injected, seconds)."""
    redis = RedisTarget.parse(url).client()

    async def send(first: int) -> None:
        now = datetime.now(UTC)
        await inject(redis, streams, [load_transition(n, now) for n in range(first, first + CHUNK)])

    try:
        begin = time.monotonic()
        sent = await paced_load(send, per_s=LOAD_PER_S, chunk=CHUNK, started=started, stop=stop)
        return sent, time.monotonic() - begin
    finally:
        await redis.aclose()


async def cw_probes(redis: Redis, streams: StreamSettings, phase: str) -> dict[str, float]:
    """PROBES exhausted firings, an advertiser each, one per slot; advertiser -> sent."""
    sent: dict[str, float] = {}
    async for index in probe_slots():
        advertiser = PROBE_BASE[phase] + index
        one = transition(
            advertiser, "credit.exhausted", episode=0, firing=True, now=datetime.now(UTC)
        )
        sent[str(advertiser)] = time.monotonic()
        await inject(redis, streams, [one])
    return sent


async def durable_check(redis: Redis, streams: StreamSettings) -> tuple[Counter[str], int]:
    """(delivery documents by status, deliveries still queued) in Redis."""
    statuses: Counter[str] = Counter()
    keys = [k async for k in redis.scan_iter(match=streams.key("delivery", "*"), count=10_000)]
    for start in range(0, len(keys), 1000):
        for raw in await redis.mget(keys[start : start + 1000]):
            if raw is not None:
                statuses[Delivery.model_validate_json(raw).status] += 1
    queued = int(await redis.zcard(streams.key("deliveries", "due")))
    return statuses, queued


# --- the run ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def redis_cpu_seconds(redis: Redis) -> float:
    """The Redis server's user and system CPU time so far (``INFO cpu``)."""
    cpu = await redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


@dataclass(frozen=True)
class AlertmanagerRun:
    idle: Latencies
    loaded: Latencies
    rate: float
    notified: int  # notifications under load
    cpu_per_notification_s: float  # Alertmanager's CPU under load over those notifications


async def alertmanager_phases(sink: SinkClient) -> AlertmanagerRun:
    async with alertmanager(f"{sink.base}/am") as (url, pid):
        sent = await am_probes(url, "idle")
        stats = await sink.wait(lambda s: sent.keys() <= s["probes"].keys(), PROBE_TIMEOUT_S)
        idle = Latencies.of(sent, stats["probes"])
        await sink.reset()
        load = Load.spawn(am_load, url)
        try:
            await wait_for(load.started, load.process, "the Alertmanager load", 60)
            cpu_began = cpu_seconds(pid)
            await asyncio.sleep(WARMUP_S)
            sent = await am_probes(url, "loaded")
        finally:
            posted, seconds = await load.finish()
        stats = await sink.wait(lambda s: sent.keys() <= s["probes"].keys(), PROBE_TIMEOUT_S)
        cpu = cpu_seconds(pid) - cpu_began
        loaded = Latencies.of(sent, stats["probes"])
        await sink.reset()
    notified = int(stats["am_notifications"])
    return AlertmanagerRun(idle, loaded, posted / seconds, notified, cpu / max(notified, 1))


@dataclass(frozen=True)
class CreditwatchRun:
    idle: Latencies
    loaded: Latencies
    rate: float
    delivered_per_s: float  # from the load's start to the last webhook's arrival
    cpu_per_webhook_s: float  # the service's CPU from the load's start to the last webhook
    redis_cpu_per_webhook_s: float  # the Redis server's, the load's injection included
    expected: int
    stats: dict[str, Any]
    statuses: Counter[str]
    queued: int


async def creditwatch_phases(
    url: str, sink: SinkClient, secret: str, replicas: int
) -> CreditwatchRun:
    spawn = multiprocessing.get_context("spawn")
    prefix = f"cwbench-{uuid.uuid4().hex[:8]}"
    # A group per advertiser (5,000 for the load), each transition sent as soon as it comes:
    # Alertmanager's group_wait 0s; creditwatch's webhook is one signed message per transition.
    settings = service_settings(
        url, prefix, f"{sink.base}/cw", secret, receiver_name="sink", group_by=("advertiser_id",)
    )
    streams = settings.streams
    redis = RedisTarget.parse(url).client()
    stop = spawn.Event()
    services: list[tuple[SpawnProcess, Event]] = []
    for replica in range(replicas):
        ready = spawn.Event()
        own = settings.model_copy(
            update={"streams": streams.model_copy(update={"consumer": f"bench-{replica}"})}
        )
        process = spawn.Process(
            target=run_service, args=(own, url, ready, stop), name=f"service-{replica}"
        )
        services.append((process, ready))
    try:
        for process, _ in services:
            process.start()
        for process, ready in services:
            await wait_for(ready, process, "the service role", 60)
        sent = await cw_probes(redis, streams, "idle")
        stats = await sink.wait(lambda s: sent.keys() <= s["probes"].keys(), PROBE_TIMEOUT_S)
        idle = Latencies.of(sent, stats["probes"])
        load = Load.spawn(cw_load, url, streams)
        try:
            await wait_for(load.started, load.process, "the creditwatch load", 60)
            load_began = time.monotonic()
            cpu_began = sum(cpu_seconds(p.pid or 0) for p, _ in services)
            redis_began = await redis_cpu_seconds(redis)
            await asyncio.sleep(WARMUP_S)
            sent = await cw_probes(redis, streams, "loaded")
        finally:
            injected, seconds = await load.finish()
        expected = 2 * PROBES + injected
        stats = await sink.wait(lambda s: s["unique"] >= expected, DRAIN_TIMEOUT_S)
        cpu = sum(cpu_seconds(p.pid or 0) for p, _ in services) - cpu_began
        redis_cpu = await redis_cpu_seconds(redis) - redis_began
        loaded = Latencies.of(sent, stats["probes"])
        # Webhooks of the loaded phase over the time from the load's start to the last one's
        # arrival: the sender's sustained rate (the load's own when it keeps up).
        drained_s = float(stats["cw_last"] or math.inf) - load_began
        delivered_per_s = (int(stats["unique"]) - PROBES) / drained_s
        statuses, queued = await durable_check(redis, streams)
    finally:
        stop.set()
        for process, _ in services:
            if process.pid is not None:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
                    process.join()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()
    await sink.reset()
    webhooks = max(int(stats["unique"]) - PROBES, 1)
    return CreditwatchRun(
        idle,
        loaded,
        injected / seconds,
        delivered_per_s,
        cpu / webhooks,
        redis_cpu / webhooks,
        expected,
        stats,
        statuses,
        queued,
    )


def checks(cw: CreditwatchRun) -> tuple[str, list[str]]:
    """One creditwatch run's delivery figures, and what it got wrong (nothing, to pass)."""
    unique, duplicates = int(cw.stats["unique"]), int(cw.stats["duplicates"])
    unverified = int(cw.stats["unverified"])
    lost = max(0, cw.expected - unique)
    delivered = cw.statuses.get("delivered", 0)
    durable = cw.queued == 0 and delivered == cw.expected and sum(cw.statuses.values()) == delivered
    text = (
        f"idle {cw.idle.text()}, under {cw.rate:,.0f} transitions/s ({GROUPS:,} groups) "
        f"{cw.loaded.text()}, delivered {cw.delivered_per_s:,.0f} webhooks/s from the load's "
        f"start to the last, {cw.cpu_per_webhook_s * 1e6:,.0f} us of service CPU and "
        f"{cw.redis_cpu_per_webhook_s * 1e6:,.0f} us of Redis CPU per webhook; "
        f"webhooks {unique:,}/{cw.expected:,} arrived, {lost} lost, {duplicates} twice, "
        f"{unverified} unverified; deliveries in Redis {delivered:,} delivered, "
        f"{cw.queued} still queued"
    )
    wrong = []
    if lost or duplicates or unverified:
        wrong.append("webhooks lost, twice or unverified")
    if not durable:
        wrong.append("deliveries not all recorded delivered")
    if cw.rate < 0.95 * LOAD_PER_S:
        wrong.append("load below 95% of 1,000/s")
    return text, wrong


async def main() -> None:
    configure_logging("warning")
    alertmanager_binary()  # before anything starts: say how to install it if missing
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    spawn = multiprocessing.get_context("spawn")
    stop_sink = spawn.Event()
    sink_process, port = start_sink(secret, stop_sink)
    sink = SinkClient(port)
    runs: dict[int, CreditwatchRun] = {}
    try:
        alone = await sink_alone(sink, port, secret)
        print(f"sink alone: {alone:,.0f} verified requests/s", flush=True)
        am = await alertmanager_phases(sink)
        print(
            f"alertmanager idle {am.idle.text()}; loaded {am.loaded.text()}; "
            f"{am.cpu_per_notification_s * 1e6:,.0f} us CPU per notification",
            flush=True,
        )
        for replicas in sorted({1, REPLICAS}):
            with redis_url() as url:
                runs[replicas] = cw = await creditwatch_phases(url, sink, secret, replicas)
            print(f"creditwatch, {replicas} service process(es): {checks(cw)[0]}", flush=True)
    finally:
        await sink.aclose()
        stop_sink.set()
        sink_process.join(timeout=30)
        if sink_process.is_alive():
            sink_process.terminate()
            sink_process.join()

    def ratio(cw: CreditwatchRun) -> str:
        if am.loaded.missing or cw.loaded.missing:
            return "n/a: probes missing"
        return f"{cw.loaded.p99 / am.loaded.p99:.2f} x"

    scaled = runs[REPLICAS]
    notes = [f"{n} process(es): {w}" for n, cw in runs.items() for w in checks(cw)[1]]
    if am.rate < 0.95 * LOAD_PER_S:
        notes.append("Alertmanager's load below 95% of 1,000/s")
    if scaled.loaded.p99 > am.loaded.p99:
        notes.append("creditwatch p99 over Alertmanager's")
    sides = "; ".join(
        f"creditwatch with {n} service process(es) ({ratio(cw)} Alertmanager's p99) {checks(cw)[0]}"
        for n, cw in runs.items()
    )
    figures = (
        f"probes {PROBES}, one per {PROBE_EVERY_S * 1000:g} ms slot at a random moment; "
        f"Alertmanager 0.25 (one process, every core) idle {am.idle.text()}, "
        f"under {am.rate:,.0f} alerts/s ({GROUPS:,} groups, "
        f"{am.notified:,} notifications) {am.loaded.text()}, "
        f"{am.cpu_per_notification_s * 1e6:,.0f} us CPU per notification; {sides} "
        f"(transitions injected on the alerts stream as the detector writes them); receiver "
        f"alone {alone:,.0f} verified req/s ({ALONE_CONNECTIONS} connections); shared, loaded "
        f"{os.cpu_count()}-core machine"
    )
    record(
        f"7. delivery vs Alertmanager ({LOAD_PER_S:,} alerts/s, {GROUPS:,} groups)",
        figures,
        f"{ratio(scaled)} Alertmanager's p99 under load ({REPLICAS} service processes)",
        "creditwatch p99 <= Alertmanager p99 under the same load; none lost, none twice, "
        "signed, durable",
        not notes,
        note="; ".join(notes),
    )


if __name__ == "__main__":
    asyncio.run(main())
