"""Hostile traffic against a real ``creditwatch service`` process on loopback (real Redis).

A 200-way burst of unauthenticated requests gets answers (503 with Retry-After at most, never
a 500) while the pipeline keeps delivering; a 50 MB unauthenticated body is refused without
the process growing by it; a few hundred malformed requests get 4xx, never 5xx, and the
process stays up. The figures (requests tried, 5xx seen, RSS) are printed for the report
(``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from faststream.redis import RedisBroker

from config.settings import Settings
from tests.support.api_account import CREDIT, PROGRAM
from tests.support.grant_polls import GRANTS, snapshot
from tests.support.processes import Role
from tests.support.receiver import SECRET, WebhookSink
from tests.support.servers import free_port
from tests.support.waiting import eventually

TOKEN = "hostile-suite-token-5b1e07"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MB = 1024 * 1024
# Log lines that mean a request or a background round failed rather than said no.
# Polls of tests.support.grant_polls.snapshot: credit there, then none.
FULL, EMPTY = 0, GRANTS.index("0")
FAILURES = ("Traceback", "round_failed", "MaxConnectionsError", "Exception in ASGI")


@dataclass
class Service:
    role: Role
    url: str

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.role.process.pid).memory_info().rss)

    def failures(self) -> list[str]:
        return [
            line for line in self.role.output().splitlines() if any(f in line for f in FAILURES)
        ]


@asynccontextmanager
async def running_service(
    settings: Settings, tmp_path: Path, hook_url: str, **env: str
) -> AsyncIterator[Service]:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        "notify:\n"
        "  console: false\n"
        "  group_wait: 0s\n"
        "  receivers:\n"
        f"    - {{type: webhook, name: hostile, url: '{hook_url}', secret: '{SECRET}'}}\n"
        "  route:\n"
        "    receiver: hostile\n"
        # At once, one message per alert.
        "    group_by: ['...']\n"
        "    group_wait: 0s\n"
        "    group_interval: 0s\n"
    )
    port = free_port()
    role = Role(
        "service",
        {
            "CREDITWATCH_REDIS_URL": settings.redis_url or "",
            "CREDITWATCH_STREAMS__PREFIX": settings.streams.prefix,
            "CREDITWATCH_CONFIG_FILE": str(config),
            "CREDITWATCH_API__PORT": str(port),
            "CREDITWATCH_API__TOKENS": TOKEN,
            "CREDITWATCH_LOG_LEVEL": "info",
            **env,
        },
        tmp_path / "service.log",
    )
    service = Service(role, f"http://127.0.0.1:{port}")
    try:
        await role.serving(f"{service.url}/healthz")
        yield service
    finally:
        assert role.stop() == 0, role.output()


async def test_a_200_way_burst_gets_no_500_and_the_pipeline_keeps_delivering(
    settings: Settings, tmp_path: Path
) -> None:
    advertisers = 5
    async with (
        WebhookSink() as sink,
        running_service(settings, tmp_path, sink.url) as service,
    ):
        broker = RedisBroker(settings.redis_url or "")
        await broker.connect()
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
        statuses: Counter[tuple[str, int]] = Counter()
        without_retry_after = 0
        redis_trouble = 0
        try:
            for n in range(advertisers):
                await broker.publish(snapshot(n, FULL), stream=settings.streams.snapshots)
            async with httpx.AsyncClient(base_url=service.url, timeout=120, limits=limits) as http:

                async def hit(path: str) -> None:
                    nonlocal without_retry_after, redis_trouble
                    response = await http.get(path)
                    statuses[(path, response.status_code)] += 1
                    if response.status_code == 503 and "retry-after" not in response.headers:
                        without_retry_after += 1
                    # Busy is no reason to say Redis is in trouble (/readyz used to flap so).
                    redis_trouble += "redis" in response.text and response.status_code == 503

                for burst in range(3):
                    paths = ["/", "/readyz"] * 100
                    requests = [asyncio.create_task(hit(p)) for p in paths]
                    if burst == 1:  # credit runs out while the burst is on
                        for n in range(advertisers):
                            await broker.publish(
                                snapshot(n, EMPTY), stream=settings.streams.snapshots
                            )
                    await asyncio.gather(*requests)
                health = await http.get("/healthz")
        finally:
            await broker.stop()

        async def all_delivered() -> bool:
            kinds = {(p["type"], p["data"]["advertiser_id"]) for p in sink.payloads()}
            return sum(1 for kind, _ in kinds if kind == "credit.exhausted") >= advertisers

        await eventually(all_delivered, within=90, every=0.5)
        print(f"\nburst: {sum(statuses.values())} requests, answers {dict(statuses)}")
        assert sum(statuses.values()) == 600
        assert {code for _, code in statuses} <= {200, 503}, statuses
        assert statuses[("/", 200)] > 0 and statuses[("/readyz", 200)] > 0
        assert without_retry_after == 0
        assert redis_trouble == 0
        assert health.status_code == 200
        assert all(r.verified for r in sink.received)
        assert service.failures() == []


async def large_post(
    url: str, path: str, size: int, headers: dict[str, str], *, declared: bool
) -> int:
    """POST ``size`` bytes of JSON-ish junk, streamed; the status the server answered with."""

    async def body() -> AsyncIterator[bytes]:
        chunk = b"[" + b'"aaaaaaaaaaaaaaa",' * (64 * 1024 // 18)
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            sent += len(piece)
            yield piece

    sized = {"Content-Length": str(size)} if declared else {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        response = await http.post(
            path,
            content=body(),
            headers={"Content-Type": "application/json", **sized, **headers},
        )
        return response.status_code


async def test_a_50_mb_body_is_refused_without_landing_in_memory(
    settings: Settings, tmp_path: Path
) -> None:
    async with running_service(settings, tmp_path, "http://127.0.0.1:9/hook") as service:
        before = service.rss
        peak = before
        answers: list[int] = []

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, service.rss)
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        try:
            for headers, declared in [
                ({}, True),  # unauthenticated, Content-Length: 401 before the body is read
                ({}, False),  # unauthenticated, chunked
                (AUTH, True),  # authenticated, too large: 413 from Content-Length
                (AUTH, False),  # authenticated, chunked: 413 once the count passes the cap
            ]:
                answers.append(
                    await large_post(
                        service.url, "/v1/credits", 50 * MB, headers, declared=declared
                    )
                )
        finally:
            sampler.cancel()
        after = service.rss
        print(
            f"\nlarge bodies: answers {answers}, RSS {before // MB} -> peak {peak // MB}"
            f" -> {after // MB} MB"
        )
        assert answers[0] in (401, 413) and answers[1] in (401, 413)
        assert answers[2:] == [413, 413]
        assert peak - before < 20 * MB
        async with httpx.AsyncClient(base_url=service.url) as http:
            assert (await http.get("/healthz")).status_code == 200
        assert service.failures() == []


SILENCE: dict[str, Any] = {
    "matchers": {"kind": "credit.*"},
    "duration": "2h",
    "comment": "fuzz",
    "author": "fuzz",
}
SUBSCRIPTION: dict[str, Any] = {"url": "https://hooks.example.com/x", "kinds": ["*"]}
BODIES = {
    "/v1/credits": CREDIT,
    "/v1/ladder-programs": PROGRAM,
    "/v1/silences": SILENCE,
    "/v1/subscriptions": SUBSCRIPTION,
}
BAD_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" + "0" * 5000,
    "-0",
    "null",
    "true",
    "[]",
    "{}",
    '"' + "x" * 100_000 + '"',
    '"\\u0000"',
    '"\\ud800"',
    "[" * 50 + "]" * 50,
    '{"$ref": "#"}',
    '"2026-13-45T99:99:99Z"',
]
BAD_BODIES = [
    b"",
    b"{",
    b"[",
    b"null",
    b'"just a string"',
    b"12",
    b'{"a":',
    b"\xff\xfe\x00{",
    b"[" * 100_000,
    b'{"a": 1, "a": 2}',
    b"NaN",
    b"{}" * 1000,
    b'{"' + b"k" * 100_000 + b'": 1}',
    json.dumps({f"k{n}": n for n in range(20_000)}).encode(),
]
CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-7",
]
BAD_AUTH: list[str | bytes] = [
    "",
    "Bearer",
    f"Bearer\t{TOKEN}",
    f"bearer{TOKEN}",
    f"Basic {TOKEN}",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    "Bearer " + "A" * 10_000,
    f"Bearer  {TOKEN}  extra",
    "Bearer tökén-ünïcode-värde".encode(),
    b"Bearer \xff\xfe",
    TOKEN,
]
BAD_QUERIES = [
    ("/v1/alerts", {"limit": "abc"}),
    ("/v1/alerts", {"limit": "1e400"}),
    ("/v1/alerts", {"limit": "NaN"}),
    ("/v1/alerts", {"limit": "-1"}),
    ("/v1/alerts", {"limit": "9" * 400}),
    ("/v1/alerts", {"status": "x" * 5000}),
    ("/v1/alerts", {"advertiser_id": "x" * 5000}),
    ("/v1/silences", {"offset": "1e400"}),
    ("/v1/silences", {"limit": "0"}),
    ("/v1/silences", {"state": "%00"}),
    ("/v1/accounts/" + "9" * 5000, {}),
    ("/v1/accounts/..%2F..%2Fetc", {}),
    ("/v1/silences/sil_%00", {}),
    ("/v1/subscriptions/sub_" + "f" * 500, {}),
    ("/v1/credits", {"advertiser_id": "\u202e" * 100}),
]


def with_value(body: dict[str, Any], field: str, raw: str) -> bytes:
    return json.dumps({**body, field: "@@"}).replace('"@@"', raw).encode()


Probe = tuple[str, str, Mapping[str, str | bytes], bytes | None]


def hostile_requests() -> Iterator[Probe]:
    """(method, path, headers, body) of every probe."""
    json_auth: dict[str, str | bytes] = {**AUTH, "Content-Type": "application/json"}
    for path, body in BODIES.items():
        for field in body:
            for raw in BAD_VALUES:
                yield "POST", path, json_auth, with_value(body, field, raw)
        for raw_body in BAD_BODIES:
            yield "POST", path, json_auth, raw_body
            yield "POST", path, {"Content-Type": "application/json"}, raw_body  # no token
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-7",
        ]:
            yield "POST", path, {**AUTH, "Content-Type": content_type}, b"--x\r\n\r\n{}"
        yield "POST", path, json_auth, json.dumps([body] * 10).encode()
        yield "PUT", f"{path}/{body.get('id', 'x')}", json_auth, b'{"id": NaN}'
        yield "PATCH", path, json_auth, b"{}"
    for authorization in BAD_AUTH:
        yield "GET", "/v1/alerts", {"Authorization": authorization}, None
        yield "POST", "/v1/silences", {"Authorization": authorization}, b"{broken"
    for path, params in BAD_QUERIES:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        yield "GET", f"{path}?{query}" if query else path, AUTH, None
    many = {f"x-fuzz-{n}": "v" * 50 for n in range(150)}
    for path in ["/", "/readyz", "/metrics", "/asyncapi", "/v1/alerts", "/healthz"]:
        yield "GET", path, {**AUTH, **many}, None
        yield "GET", path, {**AUTH, "x-long": "v" * 60_000}, None
        yield "TRACE", path, AUTH, None
        yield "POST", path, AUTH, b"{}"
    yield "GET", "/" + "a" * 20_000, {}, None
    yield "GET", "/v1/%", AUTH, None
    yield "POST", "/v1/silences", json_auth, b"x" * (2 * MB)


async def test_hostile_requests_get_4xx_never_5xx(settings: Settings, tmp_path: Path) -> None:
    async with running_service(settings, tmp_path, "http://127.0.0.1:9/hook") as service:
        tried = 0
        answers: Counter[int] = Counter()
        server_errors: list[str] = []
        dropped: list[str] = []
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
            for method, path, headers, body in hostile_requests():
                tried += 1
                try:
                    raw = [
                        (k.encode(), v if isinstance(v, bytes) else v.encode())
                        for k, v in headers.items()
                    ]
                    response = await http.request(method, path, headers=raw, content=body)
                except httpx.TransportError as error:
                    dropped.append(f"{method} {path[:60]}: {type(error).__name__}")
                    continue
                answers[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{method} {path[:60]} -> {response.status_code}")
            alive = (await http.get("/healthz")).status_code
        print(
            f"\nhostile suite: {tried} requests, answers {dict(sorted(answers.items()))},"
            f" 5xx {len(server_errors)}, dropped {len(dropped)}"
        )
        assert tried >= 300
        assert server_errors == [], (server_errors, dropped)
        assert dropped == [], dropped
        assert alive == 200
        assert service.role.process.poll() is None
        assert service.failures() == []


async def test_a_client_trickling_its_headers_is_cut_off_and_others_are_served(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        WebhookSink() as sink,
        running_service(settings, tmp_path, sink.url, CREDITWATCH_API__HEADER_TIMEOUT_S="1") as (
            service
        ),
    ):
        port = int(service.url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        opened = loop.time()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: creditwatch\r\nX-Slow: ")
        await writer.drain()

        async def trickle() -> None:
            # A byte every 0.2 s: each one would reset uvicorn's own (keep-alive) timer.
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.2)
                    writer.write(b"x")
                    await writer.drain()

        trickling = asyncio.create_task(trickle())
        try:
            # Far longer than the 1 s deadline: the cut must come, load or not.
            answer = await asyncio.wait_for(reader.read(), timeout=60)
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickling
            writer.close()
        held_s = loop.time() - opened
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            served = (await http.get("/healthz")).status_code
    assert answer == b""  # closed without a response: the request never began
    assert held_s >= 0.9
    assert served == 200
