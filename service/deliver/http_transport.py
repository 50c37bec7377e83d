"""The receivers' HTTP/1.1 transport for httpx: kept-alive connections, one write per request.

httpx's default pool (httpcore on anyio) spends more time than the request itself once many
requests are under way: every request, and every answer, walks the whole pool and asks each
idle connection's socket whether the peer closed it (a ``select`` per connection), and a
request goes out in two writes (head, then body). Under an alert burst that was most of a
delivery's cost. This transport keeps idle connections per origin on a stack (the most
recently used first), asks the event loop, not the socket, whether one was closed meanwhile,
and writes a request's head and body at once; parsing is h11's, as in httpcore. A receiver's
POST (``post``, which ``bounded_reply`` uses on the receivers' own client) goes past httpx's
request and response objects and h11 as well: its head is written from headers the service
built, and the reply's status line, headers and body are read here (``_read_reply``). Under an
alert burst those layers cost as much as the rest of the POST.

It is a drop-in ``httpx.AsyncBaseTransport``: the client's API and timeouts are unchanged
(``timeout`` gives connect, write, pool and per-read limits; ``bounded_reply`` bounds the
whole attempt). ``receivers_client`` puts it under a client that sends a request straight to
it, past httpx's cookie jar, auth flow and redirect loop, none of which a receiver uses.
HTTP/1.1 only, as httpx without ``http2``; no proxies (the service falls back to httpx's own
transport when the environment names one, see ``service.roles``).
A kept-alive connection the server closed just as a request left on it fails that request
(``RemoteProtocolError``), as with httpcore; the sender retries it on its schedule.

Usage::

    http = receivers_client()      # an httpx.AsyncClient on KeepAliveTransport()
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import h11
import httpx

__all__ = ["HTTP_CONNECTIONS", "DirectClient", "KeepAliveTransport", "RawReply", "receivers_client"]

# Open connections of the receivers' HTTP client (httpx's default), all of them kept alive.
HTTP_CONNECTIONS = 100
_READ = 64 * 1024
Origin = tuple[bytes, bytes, int]  # scheme, host, port


class _Connection:
    """One TCP (or TLS) connection and its h11 state."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = time.monotonic()

    def reusable(self, now: float, expiry_s: float) -> bool:
        """Idle, not past its keep-alive expiry, and not closed by the peer (the loop has seen
        the peer's FIN, or unasked bytes, by the time the connection is taken again)."""
        return (
            now - self.idle_since < expiry_s
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and self.h11.our_state is h11.IDLE
        )

    def close(self) -> None:
        self.writer.close()


def _timeout(request: httpx.Request, which: str) -> float | None:
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeouts.get(which)


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` requests at once; up to that many idle connections kept,
    each for ``keepalive_expiry_s`` (one past it, or closed by the peer, is closed when next
    looked at for its origin, or when the transport closes)."""

    def __init__(
        self,
        *,
        max_connections: int = HTTP_CONNECTIONS,
        keepalive_expiry_s: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._expiry_s = keepalive_expiry_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin: Origin = (url.raw_scheme, url.raw_host, url.port or _default_port(url))
        await self._slot(_timeout(request, "pool"), request)
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin) or await self._connect(origin, request)
            head = await self._send(connection, request)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        stream = _ResponseStream(self, origin, connection, request)
        return httpx.Response(
            head.status_code,
            headers=head.headers,
            stream=stream,
            extensions={"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason},
        )

    async def _slot(self, timeout_s: float | None, request: httpx.Request | None) -> None:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._slots.locked():  # every slot taken: wait, no longer than the pool timeout
            try:
                async with asyncio.timeout(timeout_s):
                    await self._slots.acquire()
            except TimeoutError as error:
                raise httpx.PoolTimeout("no connection slot free", request=request) from error
        else:
            await self._slots.acquire()

    async def post(
        self, url: httpx.URL, headers: Sequence[tuple[str, str]], body: bytes, *, max_bytes: int
    ) -> RawReply:
        """A receiver's POST without httpx's request and response objects or h11's checks of
        headers it need not check (``bounded_reply`` sends through here when it can): the
        head and body written at once, the reply read as it comes (``_read_reply``), its
        first ``max_bytes`` kept, the connection kept for the next request only when the
        reply was read to its end and may be followed by another. The caller bounds the
        whole attempt's time; failures are httpx's errors, as ``handle_async_request``'s."""
        origin: Origin = (url.raw_scheme, url.raw_host, url.port or _default_port(url))
        request = _request_bytes(url, headers, body)
        await self._slot(None, None)
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin) or await self._connect(origin, None)
            writer = connection.writer
            try:
                writer.write(request)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
            except OSError as error:
                raise httpx.WriteError(str(error) or type(error).__name__) from error
            reply, reusable = await _read_reply(connection.reader, max_bytes)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        self._finish(origin, connection, reusable=reusable)
        return reply

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        now = time.monotonic()
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            if connection.reusable(now, self._expiry_s):
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, request: httpx.Request | None) -> _Connection:
        scheme, host, port = origin
        tls = self._tls() if scheme == b"https" else None
        hostname = host.decode("ascii")
        try:
            async with asyncio.timeout(_timeout(request, "connect") if request else None):
                reader, writer = await asyncio.open_connection(
                    hostname,
                    port,
                    ssl=tls,
                    server_hostname=hostname if tls is not None else None,
                    limit=_READ,
                )
        except TimeoutError as error:
            raise httpx.ConnectTimeout(f"connect to {hostname}:{port}", request=request) from error
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(str(error) or type(error).__name__, request=request) from error
        return _Connection(reader, writer)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _send(self, connection: _Connection, request: httpx.Request) -> h11.Response:
        """Write the request at once, then read up to its response's head."""
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        wire = connection.h11
        try:
            head = h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
            out = wire.send(head) or b""
            if body:
                out += wire.send(h11.Data(data=body)) or b""
            out += wire.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as error:
            raise httpx.LocalProtocolError(str(error), request=request) from error
        writer = connection.writer
        try:
            writer.write(out)
            if writer.transport.get_write_buffer_size():  # not all taken by the socket at once
                async with asyncio.timeout(_timeout(request, "write")):
                    await writer.drain()
        except TimeoutError as error:
            raise httpx.WriteTimeout("write", request=request) from error
        except OSError as error:
            raise httpx.WriteError(str(error) or type(error).__name__, request=request) from error
        while True:
            event = await _next_event(connection, request)
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                continue
            raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__}", request=request)

    def _done(self, origin: Origin, connection: _Connection, reusable: bool) -> None:
        """A response finished (read to its end, or abandoned): keep or close its connection."""
        wire = connection.h11
        reusable = reusable and wire.our_state is h11.DONE and wire.their_state is h11.DONE
        if reusable:
            wire.start_next_cycle()
        self._finish(origin, connection, reusable=reusable)

    def _finish(self, origin: Origin, connection: _Connection, *, reusable: bool) -> None:
        """Give the request's slot back; keep its connection for the next request to
        ``origin`` (room allowing) or close it."""
        self._slots.release()
        if reusable and not self._closed and self._idle_count < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.close()

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()
        self._idle_count = 0


async def _next_event(connection: _Connection, request: httpx.Request) -> Any:
    wire = connection.h11
    while True:
        try:
            event = wire.next_event()
        except h11.RemoteProtocolError as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from error
        if event is not h11.NEED_DATA:
            return event
        try:
            async with asyncio.timeout(_timeout(request, "read")):
                data = await connection.reader.read(_READ)
        except TimeoutError as error:
            raise httpx.ReadTimeout("read", request=request) from error
        except OSError as error:
            raise httpx.ReadError(str(error) or type(error).__name__, request=request) from error
        if not data and wire.their_state is h11.SEND_RESPONSE:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        wire.receive_data(data)


class _ResponseStream(httpx.AsyncByteStream):
    """A response body read from its connection; closing it gives the connection back (kept
    alive when the body was read to its end) or closes it."""

    def __init__(
        self,
        transport: KeepAliveTransport,
        origin: Origin,
        connection: _Connection,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._request = request
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._complete:
            event = await _next_event(self._connection, self._request)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
            else:
                raise httpx.RemoteProtocolError(
                    f"unexpected {type(event).__name__}", request=self._request
                )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport._done(self._origin, self._connection, reusable=self._complete)


class RawReply(NamedTuple):
    """A reply as ``KeepAliveTransport.post`` read it: the status, the header lines (names
    lower-cased), at most ``max_bytes`` of the body as it came, and whether there was more."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool


# What may not appear in a header line we write (h11 refuses the same).
_UNSAFE = re.compile(r"[\r\n\0]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


def _request_bytes(url: httpx.URL, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    lines = [b"POST ", url.raw_path, b" HTTP/1.1\r\nhost: ", url.netloc, b"\r\n"]
    for name, value in headers:
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            raise httpx.LocalProtocolError(f"illegal header line for {name!r}")
        lines += [name.encode("ascii"), b": ", value.encode("ascii"), b"\r\n"]
    lines += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
    return b"".join(lines)


async def _read_reply(reader: asyncio.StreamReader, max_bytes: int) -> tuple[RawReply, bool]:
    """The reply to the request just written (interim 1xx answers skipped), and whether its
    connection may carry another: an HTTP/1.1 reply read to its end, no ``close`` asked."""
    answered = False  # some of the reply came
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            answered = True
            version, status, headers = _head(head)
            if not 100 <= status < 200:
                break
        fields = dict(headers)
        kept = status != 101 and version == b"HTTP/1.1"
        kept = kept and b"close" not in fields.get(b"connection", b"").lower()
        if status in (204, 304):
            body, more, ended = b"", False, True
        elif b"transfer-encoding" in fields:
            if not fields[b"transfer-encoding"].lower().endswith(b"chunked"):
                raise httpx.RemoteProtocolError("a transfer coding other than chunked last")
            body, more, ended = await _chunked(reader, max_bytes)
        elif b"content-length" in fields:
            body, more, ended = await _sized(reader, _length(fields[b"content-length"]), max_bytes)
        else:  # delimited by the server closing the connection
            body, ended = await _until_closed(reader, max_bytes), False
            body, more = body[:max_bytes], len(body) > max_bytes
    except asyncio.IncompleteReadError as error:
        if not answered and not error.partial:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            ) from error
        raise httpx.RemoteProtocolError("the server closed the connection mid-reply") from error
    except asyncio.LimitOverrunError as error:
        raise httpx.RemoteProtocolError("a reply head or chunk line too long") from error
    except OSError as error:
        raise httpx.ReadError(str(error) or type(error).__name__) from error
    return RawReply(status, headers, body, more), kept and ended and not more


def _head(raw: bytes) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    """(version, status, header lines) of a reply head; a malformed one is a protocol error."""
    status_line, *lines = raw[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise httpx.RemoteProtocolError(f"a malformed header line: {line[:80]!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    return parts[0], int(parts[1]), headers


def _length(value: bytes) -> int:
    if not value.strip().isdigit():
        raise httpx.RemoteProtocolError(f"a malformed content-length: {value[:40]!r}")
    return int(value)


async def _sized(
    reader: asyncio.StreamReader, length: int, max_bytes: int
) -> tuple[bytes, bool, bool]:
    """(kept body, more than kept, read to its end) of a body of ``length`` bytes."""
    body = await reader.readexactly(min(length, max_bytes))
    return body, length > max_bytes, length <= max_bytes


async def _chunked(reader: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bool, bool]:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_line):
            raise httpx.RemoteProtocolError(f"a malformed chunk size: {size_line[:40]!r}")
        size = int(size_line, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, unread
                pass
            return bytes(body), False, True
        if len(body) + size > max_bytes:
            body += await reader.readexactly(max_bytes - len(body))
            return bytes(body), True, False
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk not followed by CRLF")


async def _until_closed(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """Up to one byte past ``max_bytes`` (enough to know there was more)."""
    body = bytearray()
    while len(body) <= max_bytes:
        data = await reader.read(_READ)
        if not data:
            break
        body += data
    return bytes(body)


def _default_port(url: httpx.URL) -> int:
    return 443 if url.raw_scheme == b"https" else 80


class DirectClient(httpx.AsyncClient):
    """httpx's client on one transport, whose ``send`` hands a request straight to it.

    A receiver is sent no cookies, no auth and no redirects (a 3xx is its answer), yet the
    client's send ran every request through its auth flow, its redirect loop and its cookie
    jar: under an alert burst, about 40 % of a POST's cost on top of the transport's. A
    request asking for auth or redirects still takes that way."""

    def __init__(self, transport: KeepAliveTransport) -> None:
        super().__init__(transport=transport)
        self._direct = transport

    async def post_raw(
        self, url: httpx.URL, headers: Sequence[tuple[str, str]], body: bytes, *, max_bytes: int
    ) -> RawReply:
        """``KeepAliveTransport.post``: a receiver's POST past the client's request objects."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        return await self._direct.post(url, headers, body, max_bytes=max_bytes)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        # httpx's own types for these two are private; any value but the default goes to it.
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        default = httpx.USE_CLIENT_DEFAULT
        if auth is not default or follow_redirects is not default:
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._direct.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def receivers_client() -> httpx.AsyncClient:
    """The configured receivers' HTTP client: connections kept for reuse, as many as may be
    open (under an alert burst, a pool keeping fewer would open and close one per delivery),
    on this transport; on httpx's own when the environment names a proxy, which only httpx's
    transport goes through."""
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        pool = httpx.Limits(
            max_connections=HTTP_CONNECTIONS, max_keepalive_connections=HTTP_CONNECTIONS
        )
        return httpx.AsyncClient(limits=pool)
    return DirectClient(KeepAliveTransport())
