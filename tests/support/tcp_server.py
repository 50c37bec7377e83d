"""Loopback TCP servers for the transport tests: a coroutine serves each connection.

Usage::

    async with tcp_server(serve) as port:      # serve(reader, writer), once per connection
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import h11

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(serve: Serve) -> AsyncIterator[int]:
    """Listens on a free loopback port (yielded) until the block ends. Each connection is
    closed once ``serve`` returns, or once the client broke it off (a reset, or bytes h11
    refuses), which ends ``serve`` quietly."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (ConnectionError, h11.RemoteProtocolError):
            return
        finally:
            writer.close()

    listener = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield int(listener.sockets[0].getsockname()[1])
    finally:
        listener.close()
