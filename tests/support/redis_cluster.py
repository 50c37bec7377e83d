"""A real Redis Cluster for the cluster tests: three masters and three replicas on loopback.

Six ``redis-server --cluster-enabled yes`` processes on free ports in a temporary folder, joined
by ``redis-cli --cluster create --cluster-replicas 1``; ready once every node reports
``cluster_state:ok`` and a replica per master. ``kill_master_of(key)`` SIGKILLs the master that
owns a key's slot, for the chaos test.

Usage::

    with RedisCluster(tmp_path) as cluster:
        settings = Settings(redis_url=cluster.url, ...)
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import redis
from redis.crc import key_slot

from tests.support.servers import server_environment

NODES = 6
READY_WITHIN_S = 60.0


def cluster_tools_missing() -> str | None:
    """Why the cluster tests cannot run here, or None when they can."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install redis-server)"
    return None


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_ports(count: int) -> list[int]:
    """Free loopback ports whose cluster bus port (port + 10000) is free too."""
    ports: list[int] = []
    for port in random.sample(range(20000, 30000), 2000):
        if _free(port) and _free(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free loopback ports for a redis cluster")


class RedisCluster:
    """Six cluster nodes; ``url`` is the ``redis+cluster://`` form creditwatch reads."""

    def __init__(self, folder: Path, *, appendonly: bool = True) -> None:
        self.folder = folder
        self.appendonly = appendonly
        self.ports = cluster_ports(NODES)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._killed: set[int] = set()
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])

    def _start_node(self, port: int) -> None:
        folder = self.folder / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(folder),
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "1000",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        log = (folder / "redis.log").open("wb")
        self._logs.append(log)
        self._processes[port] = subprocess.Popen(
            command, env=server_environment(), stdout=log, stderr=subprocess.STDOUT
        )

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2)

    def _wait(self, condition: str, check: object, within_s: float = READY_WITHIN_S) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            dead = [p for p, process in self._processes.items() if process.poll() is not None]
            if dead and not self._killed.issuperset(dead):
                raise RuntimeError(f"redis cluster: node(s) {dead} exited, see {self.folder}")
            try:
                if check():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"redis cluster: {condition} not reached within {within_s:.0f}s")

    def start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            self._wait(f"node {port} answering", lambda p=port: self._client(p).ping())
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1"]
        subprocess.run(
            [*create, "--cluster-yes"],
            env=server_environment(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait("cluster_state:ok on every node with 3 replicas", self._healthy)

    def _healthy(self) -> bool:
        live = [p for p, process in self._processes.items() if process.poll() is None]
        if not all(self._client(p).cluster("info")["cluster_state"] == "ok" for p in live):
            return False
        replicas = [p for p in live if self._client(p).info("replication")["role"] == "slave"]
        return (
            all(self._client(p).info("replication")["master_link_status"] == "up" for p in replicas)
            and len(replicas) >= len(live) - 3
        )

    def master_of(self, key: str) -> int:
        """The port of the master that owns ``key``'s slot now."""
        slot = key_slot(key.encode())
        for start, end, master, *_ in self._client(self._live()[0]).cluster("slots"):
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(f"no master owns slot {slot}")

    def _live(self) -> list[int]:
        return [p for p, process in self._processes.items() if process.poll() is None]

    def kill(self, port: int) -> None:
        """SIGKILL one node: no shutdown, no last write to disk beyond what fsync already did."""
        process = self._processes[port]
        self._killed.add(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def wait_promoted(self, killed: int, key: str) -> int:
        """Wait until a replica has taken over ``key``'s slot from ``killed``; its port."""
        self._wait(
            f"a replica promoted in place of {killed}",
            lambda: (
                self.master_of(key) != killed
                and all(
                    self._client(p).cluster("info")["cluster_state"] == "ok" for p in self._live()
                )
            ),
        )
        return self.master_of(key)

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self._logs:
            log.close()

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
