"""The receivers' keep-alive transport against a real local HTTP/1.1 server (asyncio + h11).

It sends what it is given (method, path, headers, body), keeps a connection for the next
request once a response was read to its end, holds at most ``max_connections`` requests at
once, opens a new connection when the server closed the old one (``Connection: close``, or
an idle close), never reuses one whose response was abandoned, and reports failures as
httpx's errors (what the receivers catch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from service.deliver.bounded_reply import post
from service.deliver.http_transport import KeepAliveTransport, receivers_client
from tests.support.servers import free_port
from tests.support.tcp_server import tcp_server

Answer = tuple[int, list[tuple[str, str]], bytes]
Reply = Callable[[h11.Request, bytes], Awaitable[Answer]]


async def echo(request: h11.Request, body: bytes) -> Answer:
    return 200, [("x-path", request.target.decode())], body


@dataclass
class Seen:
    """One request as the server read it."""

    method: bytes
    target: bytes
    headers: dict[bytes, bytes]
    body: bytes
    connection: int


@dataclass
class Server:
    """What the server saw: connections opened, requests, most requests in hand at once."""

    port: int = 0
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    in_hand: int = 0
    most_in_hand: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(65536))


@asynccontextmanager
async def http_server(
    reply: Reply = echo, *, close_after: int | None = None
) -> AsyncIterator[Server]:
    """A keep-alive HTTP/1.1 server; with ``close_after`` it closes each connection after
    that many requests (saying so in the last response's ``Connection: close``)."""
    server = Server()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        number = server.connections
        conn = h11.Connection(h11.SERVER)
        served = 0
        while True:
            request = await _next(conn, reader)
            if not isinstance(request, h11.Request):
                return  # the client closed the connection
            body = b""
            while not isinstance(event := await _next(conn, reader), h11.EndOfMessage):
                assert isinstance(event, h11.Data)
                body += bytes(event.data)
            headers = {k.lower(): v for k, v in request.headers}
            server.requests.append(Seen(request.method, request.target, headers, body, number))
            server.in_hand += 1
            server.most_in_hand = max(server.most_in_hand, server.in_hand)
            try:
                status, extra, content = await reply(request, body)
            finally:
                server.in_hand -= 1
            served += 1
            closing = close_after is not None and served >= close_after
            head = [("content-length", str(len(content))), *extra]
            if closing:
                head.append(("connection", "close"))
            out = conn.send(h11.Response(status_code=status, headers=head)) or b""
            if content:
                out += conn.send(h11.Data(data=content)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
            writer.write(out)
            await writer.drain()
            if closing:
                return
            conn.start_next_cycle()

    async with tcp_server(serve) as server.port:
        yield server


@asynccontextmanager
async def client(**options: float) -> AsyncIterator[httpx.AsyncClient]:
    transport = KeepAliveTransport(**options)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        yield http


async def test_it_sends_the_request_as_given_and_reads_the_response() -> None:
    async with http_server() as server, client() as http:
        response = await http.post(
            f"{server.url}/hooks/cw?x=1", content=b'{"a": 1}', headers={"webhook-id": "msg_1"}
        )
        got = await http.get(f"{server.url}/status")
    assert (response.status_code, response.content) == (200, b'{"a": 1}')
    assert response.headers["x-path"] == "/hooks/cw?x=1"
    assert response.http_version == "HTTP/1.1"
    first, second = server.requests
    assert (first.method, first.target, first.body) == (b"POST", b"/hooks/cw?x=1", b'{"a": 1}')
    assert first.headers[b"webhook-id"] == b"msg_1"
    assert first.headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert first.headers[b"content-length"] == b"8"
    assert (second.method, second.body, got.status_code) == (b"GET", b"", 200)


async def test_one_connection_carries_requests_one_after_another() -> None:
    async with http_server() as server, client() as http:
        for n in range(20):
            response = await http.post(f"{server.url}/n", content=str(n).encode())
            assert response.content == str(n).encode()
    assert server.connections == 1
    assert len(server.requests) == 20


async def test_at_most_max_connections_requests_at_once() -> None:
    async def slow(request: h11.Request, body: bytes) -> Answer:
        await asyncio.sleep(0.05)
        return 204, [], b""

    async with http_server(slow) as server, client(max_connections=4) as http:
        replies = await asyncio.gather(
            *(http.post(f"{server.url}/", content=b"x") for _ in range(20))
        )
    assert [r.status_code for r in replies] == [204] * 20
    assert server.most_in_hand == 4
    assert server.connections == 4  # each kept and reused, none opened past the limit


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    async with http_server(close_after=2) as server, client() as http:
        for _ in range(6):
            assert (await http.post(f"{server.url}/", content=b"x")).status_code == 200
            await asyncio.sleep(0.01)  # the server's FIN reaches the loop before the next
    assert server.connections == 3
    assert [s.connection for s in server.requests] == [1, 1, 2, 2, 3, 3]


async def test_an_idle_connection_past_its_expiry_is_replaced() -> None:
    async with http_server() as server, client(keepalive_expiry_s=0.05) as http:
        await http.post(f"{server.url}/", content=b"x")
        await http.post(f"{server.url}/", content=b"x")
        await asyncio.sleep(0.1)
        await http.post(f"{server.url}/", content=b"x")
    assert [s.connection for s in server.requests] == [1, 1, 2]


async def test_an_abandoned_response_closes_its_connection() -> None:
    async def big(request: h11.Request, body: bytes) -> Answer:
        return 200, [], b"y" * 1_000_000

    async with http_server(big) as server, client() as http:
        async with http.stream("POST", f"{server.url}/", content=b"x") as response:
            async for _ in response.aiter_raw():
                break  # the rest is left unread: the connection cannot carry another request
        again = await http.post(f"{server.url}/", content=b"x")
    assert len(again.content) == 1_000_000
    assert server.connections == 2


async def test_failures_are_httpx_errors() -> None:
    async def stall(request: h11.Request, body: bytes) -> Answer:
        await asyncio.sleep(5)
        return 204, [], b""

    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{free_port()}/", content=b"x")
    async with http_server(stall) as server, client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{server.url}/", content=b"x", timeout=0.2)
        # The timed-out connection is not handed to the next request.
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{server.url}/", content=b"x", timeout=0.2)
    assert server.connections == 2


async def test_a_server_that_hangs_up_without_answering_is_a_protocol_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with client() as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post(f"http://127.0.0.1:{port}/", content=b"x")
    finally:
        listener.close()


async def test_a_closed_transport_refuses_requests_and_closes_its_connections() -> None:
    async with http_server() as server:
        transport = KeepAliveTransport()
        http = httpx.AsyncClient(transport=transport)
        await http.post(f"{server.url}/", content=b"x")
        await http.aclose()
        with pytest.raises(RuntimeError):
            await transport.handle_async_request(httpx.Request("POST", f"{server.url}/"))


async def test_the_receivers_client_goes_through_a_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only httpx's own transport goes through proxies: with one named, the receivers'
    client is built on it, and a request reaches the proxy (its absolute URI as target)."""
    async with http_server() as proxy:
        for name in ("ALL_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        async with receivers_client() as http:
            response = await http.post("http://receiver.invalid/hook", content=b"x")
    assert response.status_code == 200
    assert [s.target for s in proxy.requests] == [b"http://receiver.invalid/hook"]


async def test_without_a_proxy_the_receivers_client_keeps_connections_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "ALL_PROXY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    async with http_server() as server, receivers_client() as http:
        for _ in range(5):
            await http.post(f"{server.url}/", content=b"x")
    assert server.connections == 1


async def test_a_receivers_post_goes_out_as_built_and_a_redirect_is_its_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The receivers' client hands requests straight to the transport: the headers
    ``bounded_reply.post`` gives go out, the reply is read, a 3xx is not followed, and the
    connection is kept for the next POST."""
    for name in ("ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("https_proxy", raising=False)

    async def redirect(request: h11.Request, body: bytes) -> Answer:
        return 307, [("location", "/elsewhere")], b"moved"

    async with http_server(redirect) as server, receivers_client() as http:
        replies = [
            await post(http, f"{server.url}/hook", content=b"x", headers={}, timeout_s=5)
            for _ in range(2)
        ]
    assert [(r.status_code, r.body) for r in replies] == [(307, b"moved")] * 2
    assert [s.target for s in server.requests] == [b"/hook", b"/hook"]
    assert server.connections == 1
    first = server.requests[0].headers
    assert (first[b"user-agent"], first[b"accept-encoding"]) == (b"creditwatch", b"identity")
