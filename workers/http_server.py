"""Serving an ASGI app with uvicorn inside the running event loop, on a chosen or free port.

Used for the sandbox API, the tests' local receivers, the service's HTTP surface and the
standalone poller's metrics.

Usage::

    async with AsgiServer(app, port=0) as server:
        httpx.get(server.url + "/healthz")
    async with listening(app, host="127.0.0.1", port=8080, name="api") as url: ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator

import structlog
import uvicorn
from starlette.types import ASGIApp

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
) -> AsyncIterator[str]:
    """``app`` served until exit, its URL logged as ``<name>.listening`` and yielded."""
    async with AsgiServer(app, host=host, port=port) as server:
        log.info(f"{name}.listening", url=server.url)
        if on_listening is not None:
            on_listening(server.url)
        yield server.url
