"""Receivers' replies are read within bounds, against a real local HTTP server that misbehaves.

A 300 MB reply, a gzip bomb (a small body inflating to 300 MB) and a reply dripped a few
hundred bytes at a time: each attempt keeps the process's memory flat (sampled with psutil
while it runs) and ends as a retry within the receiver's timeout plus some slack, where
before it buffered everything, or ran for as long as the receiver kept dripping.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache

import httpx
import psutil
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from config.notify import SlackReceiverSettings, WebhookReceiverSettings
from service.deliver.bounded_reply import MAX_REPLY_BYTES, post
from service.deliver.deliveries import Delivery
from service.deliver.http_transport import KeepAliveTransport
from service.deliver.receivers import Outcome, Receiver
from service.deliver.slack import SlackReceiver
from service.deliver.templates import Renderer
from service.deliver.webhook import WebhookReceiver
from tests.support.notify import T0, transition
from tests.support.receiver import SECRET
from workers.http_server import AsgiServer

MB = 1 << 20
HUGE = 300 * MB
TIMEOUT_S = 1.0
# Far below the 300 MB the unbounded reader took; room for the test's own allocations.
RSS_BOUND = 64 * MB
# The attempt must end near its timeout; a dripping receiver would otherwise hold it 60 s.
SLACK_S = 5.0
DRIP_FOR_S = 60.0


@cache
def gzip_bomb() -> bytes:
    """300 MB of zeros, gzipped: about 300 KB on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MB)
    return b"".join(packer.compress(block) for _ in range(HUGE // MB)) + packer.flush()


async def _huge() -> AsyncIterator[bytes]:
    block = b"x" * MB
    for _ in range(HUGE // MB):
        yield block


async def _bomb() -> AsyncIterator[bytes]:
    body = gzip_bomb()
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


async def _drip() -> AsyncIterator[bytes]:
    deadline = time.monotonic() + DRIP_FOR_S
    while time.monotonic() < deadline:
        yield b"." * 200
        await asyncio.sleep(0.25)  # 800 bytes/s: every read finishes within any timeout


async def _reply(request: Request) -> StreamingResponse:
    await request.body()
    kind = request.path_params["kind"]
    if kind == "bomb":
        return StreamingResponse(_bomb(), status_code=500, headers={"content-encoding": "gzip"})
    return StreamingResponse(_huge() if kind == "huge" else _drip(), status_code=500)


@pytest.fixture(scope="module")
def bad_server() -> Iterator[str]:
    """The misbehaving receiver, in a loop of its own so the attempt cannot starve it."""
    app = Starlette(routes=[Route("/{kind}", _reply, methods=["POST"])])
    server = AsgiServer(app)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture(params=["keepalive", "httpx"])
async def receiver_http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The receivers' client on either transport it runs on: the keep-alive one, and httpx's
    own (behind a proxy)."""
    transport = KeepAliveTransport() if request.param == "keepalive" else None
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


def webhook(url: str, http: httpx.AsyncClient) -> Receiver:
    settings = WebhookReceiverSettings(
        name="hooks", url=url, secret=SecretStr(SECRET), timeout_s=TIMEOUT_S
    )
    return WebhookReceiver(settings, http)


def slack(url: str, http: httpx.AsyncClient) -> Receiver:
    settings = SlackReceiverSettings(name="team", url=SecretStr(url), timeout_s=TIMEOUT_S)
    return SlackReceiver(settings, Renderer(settings, promotions_url="https://example.com"), http)


RECEIVERS: dict[str, Callable[[str, httpx.AsyncClient], Receiver]] = {
    "webhook": webhook,
    "slack": slack,
}


async def attempt_watched(receiver: Receiver) -> tuple[Outcome, int, float]:
    """The outcome, the peak RSS growth while it ran (sampled), and how long it took."""
    process = psutil.Process()
    start_rss = peak = process.memory_info().rss
    delivery = Delivery.new(
        delivery_id="d1", receiver=receiver.name, transitions=[transition()], now=T0
    )

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    try:
        outcome = await receiver.attempt(delivery)
    finally:
        took = time.monotonic() - started
        sampler.cancel()
    peak = max(peak, process.memory_info().rss)
    return outcome, peak - start_rss, took


@pytest.mark.parametrize("kind", list(RECEIVERS))
@pytest.mark.parametrize("reply", ["huge", "bomb"])
async def test_a_huge_or_inflating_reply_keeps_memory_flat(
    bad_server: str, kind: str, reply: str, receiver_http: httpx.AsyncClient
) -> None:
    gzip_bomb()  # built before measuring: the test's own 300 KB, not the attempt's
    receiver = RECEIVERS[kind](f"{bad_server}/{reply}", receiver_http)
    outcome, grown, _ = await attempt_watched(receiver)
    assert outcome.result in {"retry", "failed"}
    assert outcome.status_code == 500
    assert grown < RSS_BOUND, f"RSS grew {grown / MB:.0f} MB"
    assert outcome.detail.isprintable()  # a compressed body is not pasted into the log
    assert len(outcome.detail) <= 300


@pytest.mark.parametrize("kind", list(RECEIVERS))
async def test_a_dripping_reply_ends_at_the_attempt_timeout(
    bad_server: str, kind: str, receiver_http: httpx.AsyncClient
) -> None:
    receiver = RECEIVERS[kind](f"{bad_server}/drip", receiver_http)
    outcome, _, took = await attempt_watched(receiver)
    assert (outcome.result, outcome.detail) == ("retry", f"timeout after {TIMEOUT_S:g} s")
    assert took < TIMEOUT_S + SLACK_S  # the drip goes on for 60 s


async def test_the_kept_body_is_capped_and_raw(
    bad_server: str, receiver_http: httpx.AsyncClient
) -> None:
    http = receiver_http
    big = await post(http, f"{bad_server}/huge", content=b"{}", headers={}, timeout_s=30)
    bomb = await post(http, f"{bad_server}/bomb", content=b"{}", headers={}, timeout_s=30)
    assert (len(big.body), big.truncated) == (MAX_REPLY_BYTES, True)
    assert big.body == b"x" * MAX_REPLY_BYTES
    # The bomb is kept as it came, compressed: its first bytes are gzip's magic number.
    assert bomb.body[:2] == b"\x1f\x8b"
    assert len(bomb.body) <= MAX_REPLY_BYTES
