"""Serving an ASGI app with uvicorn inside the running event loop, on a chosen or free port.

Used for the sandbox API, the tests' local receivers, the service's HTTP surface and the
standalone poller's metrics.

A request's head must arrive within ``header_timeout_s`` of its connection being ready for
it (opened, or done with the last response): uvicorn's h11 protocol arms no timer while a
head arrives, and each byte cancels its keep-alive timer, so a client that trickles its
headers (slowloris) would hold a connection, and a file descriptor, for ever.

Usage::

    async with AsgiServer(app, port=0) as server:
        httpx.get(server.url + "/healthz")
    async with listening(app, host="127.0.0.1", port=8080, name="api") as url: ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator
from typing import ClassVar

import h11
import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["AsgiServer", "listening"]

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn, optionally leaving SIGINT/SIGTERM to the program that embeds it."""

    def __init__(self, config: uvicorn.Config, *, handle_signals: bool) -> None:
        super().__init__(config)
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield


class _HeaderDeadline(H11Protocol):
    """h11 with a deadline for each request's head (see the module's docstring)."""

    header_timeout_s: ClassVar[float]
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the head is in: the app's own limits take over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("http.header_timeout", client=self.client, after_s=self.header_timeout_s)
            self.transport.close()


def _with_header_deadline(timeout_s: float) -> type[H11Protocol]:
    return type("HeaderDeadline", (_HeaderDeadline,), {"header_timeout_s": timeout_s})


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - mapping a wildcard bind to a usable URL
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class AsgiServer:
    """Starts uvicorn as a task on enter, stops it gracefully on exit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handle_signals: bool = False,
        date_header: bool = True,
        header_timeout_s: float = 10.0,
    ) -> None:
        # The sandbox sends its own (simulated) Date; uvicorn would add the real one.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            date_header=date_header,
            http=_with_header_deadline(header_timeout_s),
        )
        self._server = _Server(config, handle_signals=handle_signals)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self._requested_port = port
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not listening")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    async def start(self) -> None:
        """Listen; returns once the port is bound. Raises OSError if it cannot bind."""
        if self._task is not None:
            raise RuntimeError("the server is already started")
        self._task = asyncio.create_task(self._run(), name=f"http-{self.host}")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises why startup failed
                raise OSError("the server stopped during startup")
            await asyncio.sleep(0.01)
        self._port = int(self._server.servers[0].sockets[0].getsockname()[1])

    async def _run(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind; an embedding program should
            # get an exception it can handle instead.
            where = f"{self.host}:{self._requested_port}"
            raise OSError(f"could not listen on {where}") from exc

    async def wait(self) -> None:
        """Until the server stops (a signal, when ``handle_signals``, or ``stop``)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop listening and wait for open requests to finish."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        self._port = None
        await task

    async def __aenter__(self) -> AsgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def listening(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    name: str,
    on_listening: Callable[[str], None] | None = None,
    header_timeout_s: float = 10.0,
) -> AsyncIterator[str]:
    """``app`` served until exit, its URL logged as ``<name>.listening`` and yielded."""
    async with AsgiServer(app, host=host, port=port, header_timeout_s=header_timeout_s) as server:
        log.info(f"{name}.listening", url=server.url)
        if on_listening is not None:
            on_listening(server.url)
        yield server.url
