"""Serving an ASGI app with uvicorn inside the running event loop, on a chosen or free port.

Used for the sandbox API, the service's HTTP surface and the tests' local receivers.

Usage::

    async with AsgiServer(app, port=0) as server:
        httpx.get(server.url + "/healthz")
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["AsgiServer"]


class AsgiServer:
    """Starts uvicorn as a task on enter, stops it gracefully on exit."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self._host = host

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets if self._server.servers else []
        if not sockets:
            raise RuntimeError("server is not listening")
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start (port in use, ...)
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None

    async def __aenter__(self) -> AsgiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
