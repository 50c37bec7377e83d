"""A receiver's POST on the receivers' own client (``KeepAliveTransport.post``) against a
real local server that parses each request with h11 and answers with scripted raw bytes.

The request goes out as valid HTTP/1.1 (host, content-length, the headers given); each way a
reply may be framed is read (content-length, chunked, up to the close, interim 1xx
answers), no more than ``max_bytes`` of it kept; the connection is kept only for a reply
read to its end that allows another; a malformed reply or a hang-up is httpx's error, and a
header that would split the request line is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from service.deliver.bounded_reply import Reply, post
from service.deliver.http_transport import receivers_client
from tests.support.tcp_server import tcp_server


@dataclass
class RawServer:
    """Answers the n-th request with ``answers[n]`` (then hangs up if the answer says so)."""

    answers: list[tuple[bytes, bool]]
    port: int = 0
    connections: int = 0
    requests: list[tuple[h11.Request, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


async def _request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, body
        else:
            return None  # the client closed the connection


@asynccontextmanager
async def raw_server(*answers: tuple[bytes, bool]) -> AsyncIterator[RawServer]:
    server = RawServer(list(answers))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        conn = h11.Connection(h11.SERVER)
        while (request := await _request(conn, reader)) is not None:
            server.requests.append(request)
            answer, hang_up = server.answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if hang_up:
                return
            # The reply was not written through h11: start its next cycle by hand.
            conn = h11.Connection(h11.SERVER)

    async with tcp_server(serve) as server.port:
        yield server


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receivers' client takes this path only when no proxy is named."""
    for name in ("ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("https_proxy", raising=False)


async def post_twice(server: RawServer, *, max_bytes: int = 1024) -> list[Reply]:
    async with receivers_client() as http:
        return [
            await post(
                http,
                server.url,
                content=b'{"n": 1}',
                headers={"webhook-id": "msg_1"},
                timeout_s=5,
                max_bytes=max_bytes,
            )
            for _ in range(2)
        ]


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def test_the_request_goes_out_as_valid_http_1_1_with_the_headers_given() -> None:
    async with raw_server((OK, False), (OK, False)) as server:
        replies = await post_twice(server)
    assert [(r.status_code, r.body, r.truncated) for r in replies] == [(200, b"ok", False)] * 2
    request, body = server.requests[0]
    headers = dict(request.headers)
    assert (request.method, request.target, body) == (b"POST", b"/hook?x=1", b'{"n": 1}')
    assert headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"content-length"] == b"8" and headers[b"webhook-id"] == b"msg_1"
    assert headers[b"accept-encoding"] == b"identity"
    assert server.connections == 1  # kept alive for the second


@pytest.mark.parametrize(
    ("answer", "status", "body", "connections"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
            200,
            b"hello world",
            1,
            id="chunked",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n",
            204,
            b"",
            1,
            id="interim-then-204",
        ),
        pytest.param(
            b"HTTP/1.1 429 Too Many\r\nretry-after: 7\r\nconnection: Close\r\n"
            b"content-length: 4\r\n\r\nslow",
            429,
            b"slow",
            2,
            id="connection-close",
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", 200, b"ok", 2, id="http-1.0"
        ),
    ],
)
async def test_each_framing_is_read_and_the_connection_kept_only_when_it_may_be(
    answer: bytes, status: int, body: bytes, connections: int
) -> None:
    async with raw_server((answer, connections == 2), (answer, connections == 2)) as server:
        replies = await post_twice(server)
    assert [(r.status_code, r.body) for r in replies] == [(status, body)] * 2
    assert server.connections == connections
    if status == 429:
        assert replies[0].headers["retry-after"] == "7"


async def test_a_reply_delimited_by_the_close_is_read_to_it() -> None:
    answer = b"HTTP/1.1 500 Oops\r\n\r\n" + b"e" * 3000
    async with raw_server((answer, True), (answer, True)) as server:
        replies = await post_twice(server, max_bytes=4096)
    assert [(r.status_code, r.body, r.truncated) for r in replies] == [
        (500, b"e" * 3000, False)
    ] * 2
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000, id="sized"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"3e8\r\n"
            + b"x" * 1000
            + b"\r\n"
            + b"fa0\r\n"
            + b"x" * 4000
            + b"\r\n0\r\n\r\n",
            id="chunked",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000, id="until-closed"),
    ],
)
async def test_only_max_bytes_are_kept_and_the_rest_closes_the_connection(answer: bytes) -> None:
    async with raw_server((answer, False), (answer, False)) as server:
        replies = await post_twice(server, max_bytes=1024)
    assert [(r.body, r.truncated) for r in replies] == [(b"x" * 1024, True)] * 2
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(b"", "Server disconnected without sending a response", id="hang-up"),
        pytest.param(b"HTP/1.1 200 OK\r\n\r\n", "not an HTTP/1.x status line", id="status-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "malformed header", id="folding"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", "mid-reply", id="cut-short"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "content-length", id="length"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk", id="chunk"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", "chunked", id="coding"),
    ],
)
async def test_a_malformed_reply_or_a_hang_up_is_a_protocol_error(
    answer: bytes, message: str
) -> None:
    async with raw_server((answer, True), (OK, False)) as server, receivers_client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match=message):
            await post(http, server.url, content=b"x", headers={}, timeout_s=5)
        # The broken connection is not reused: the next POST opens one and succeeds.
        reply = await post(http, server.url, content=b"x", headers={}, timeout_s=5)
    assert (reply.status_code, server.connections) == (200, 2)


async def test_a_header_that_would_split_the_request_is_refused_before_sending() -> None:
    async with raw_server((OK, False)) as server, receivers_client() as http:
        with pytest.raises(httpx.LocalProtocolError):
            await post(http, server.url, content=b"x", headers={"x-a": "1\r\nx-b: 2"}, timeout_s=5)
    assert server.requests == [] and server.connections == 0
