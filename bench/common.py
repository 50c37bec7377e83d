"""Shared plumbing of the benchmarks: where Redis is, how a result is printed and recorded, the
socket their in-process webhook receivers listen on, and a background load: its pace and the
child process it runs in.

Every benchmark prints its figures and its ratio against a reference measured in the same
run, and appends one row to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from tempfile import mkdtemp
from typing import Any, Self

import httpx
import redis
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from service.embedded_redis import EmbeddedRedis
from service.logs import configure_logging
from workers.http_server import AsgiServer

RESULTS = Path(__file__).parent / "RESULTS.md"
_HEADER = (
    "| date (UTC) | cores | benchmark | figures | ratio to reference | target | met | command |\n"
    "|---|---|---|---|---|---|---|---|\n"
)


@contextmanager
def redis_url() -> Iterator[str]:
    """``CREDITWATCH_BENCH_REDIS_URL``, else 127.0.0.1:6379 if it answers, else embedded."""
    configured = os.environ.get("CREDITWATCH_BENCH_REDIS_URL")
    if configured:
        yield configured
        return
    try:
        if redis.Redis(socket_connect_timeout=1).ping():
            yield "redis://127.0.0.1:6379/0"
            return
    except redis.RedisError:
        pass
    with EmbeddedRedis(Path(mkdtemp(prefix="cw-bench-"))) as url:
        yield url


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank; infinite when there is no sample."""
    if not sorted_ms:
        return math.inf
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def record(name: str, figures: str, ratio: str, target: str, met: bool, note: str = "") -> None:
    """Print one result and append it to RESULTS.md."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    command = f"python -m {spec.name}" if spec else " ".join(sys.argv)
    verdict = "yes" if met else f"no{': ' + note if note else ''}"
    print(f"{name}: {figures}; ratio {ratio}; target {target}; met: {verdict}", flush=True)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `make bench`.\n\n" + _HEADER)
    row = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {os.cpu_count()} | {name} | {figures} "
        f"| {ratio} | {target} | {verdict} | `{command}` |\n"
    )
    with RESULTS.open("a") as out:
        out.write(row)


async def wait_until_up(
    url: str, *, alive: Callable[[], bool] = lambda: True, within_s: float = 60
) -> None:
    """Until ``url`` answers 200; SystemExit if ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient() as http:
        while True:
            if not alive():
                raise SystemExit(f"the process behind {url} exited")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {within_s:.0f} s")
            await asyncio.sleep(0.2)


class ServedRoutes:
    """A benchmark's routes (its webhook receiver) served in this process, within ``async with``."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._server = AsgiServer(Starlette(routes=list(routes)))

    @property
    def root_url(self) -> str:
        return self._server.url

    async def __aenter__(self) -> Self:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()


async def paced_load(
    send: Callable[[int], Awaitable[None]],
    *,
    per_s: float,
    chunk: int,
    started: Event,
    stop: Event,
) -> int:
    """Until ``stop``, ``send(first)`` the ``chunk`` items numbered from ``first`` on, at
    ``per_s`` items a second; ``started`` is set once the first chunk went. Returns how many
    were sent.

    Each chunk leaves on a fixed schedule from the start, so one slow send is caught up on
    rather than slowing every later one down.
    """
    sent = 0
    begin = time.monotonic()
    while not stop.is_set():
        await send(sent)
        sent += chunk
        started.set()
        delay = begin + sent / per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


# A load's body in its child: (its arguments..., started, stop) -> (sent, seconds).
LoadMain = Callable[..., Coroutine[Any, Any, tuple[int, float]]]


def _run_load(main: LoadMain, out: Queue[tuple[int, float]], *args: Any) -> None:
    configure_logging("warning")
    out.put(asyncio.run(main(*args)))


@dataclass
class Load:
    """A background load in a child process of its own (so it does not share the measured
    process's event loop): started, then stopped with its (sent, seconds) read back."""

    process: SpawnProcess
    started: Event
    stop: Event
    out: Queue[tuple[int, float]]

    @classmethod
    def spawn(cls, main: LoadMain, *args: Any) -> Load:
        """Start ``main(*args, started, stop)`` (a module-level coroutine function)."""
        spawn = multiprocessing.get_context("spawn")
        started, stop = spawn.Event(), spawn.Event()
        out: Queue[tuple[int, float]] = spawn.Queue()
        process = spawn.Process(
            target=_run_load, args=(main, out, *args, started, stop), name="load"
        )
        process.start()
        return cls(process, started, stop, out)

    async def finish(self) -> tuple[int, float]:
        """Stop the load; (sent, seconds), or (0, 1.0) if the child said nothing in 60 s."""
        self.stop.set()
        result = (0, 1.0)
        with contextlib.suppress(queue.Empty):
            result = self.out.get(timeout=60)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        return result
