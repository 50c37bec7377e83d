"""Running creditwatch roles (and the sandbox API) as real processes for the tests, and
killing them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.paths import ROOT
from tests.support.servers import free_port
from tests.support.waiting import eventually
from workers.sandbox.admin_routes import ADMIN_PREFIX
from workers.sandbox.admission import API_PREFIX


class Role:
    """``creditwatch <command>`` in its own process, with its output in a log file."""

    def __init__(
        self, command: str, env: dict[str, str], log: Path, args: Sequence[str] = ()
    ) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", command, *args],
            env={**clean, **env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement of what it was doing."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._out.close()
        return int(self.process.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def serving(self, url: str, *, within: float = 60) -> None:
        """Until ``GET url`` answers 200; fails the test with the output if the process ends."""
        async with httpx.AsyncClient(timeout=5) as client:

            async def answers() -> bool:
                assert self.process.poll() is None, self.output()
                try:
                    return (await client.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answers, within=within, every=0.2)


def replicas(command: str, env: dict[str, str], logs: Path, name: str, count: int) -> list[Role]:
    """``count`` processes of ``command``, each its own stream consumer ``{name}-{n}`` with
    its output in ``logs/{name}-{n}.log``."""
    return [
        Role(
            command,
            {**env, "CREDITWATCH_STREAMS__CONSUMER": f"{name}-{n}"},
            logs / f"{name}-{n}.log",
        )
        for n in range(count)
    ]


class SandboxProcess:
    """``creditwatch sandbox`` with ``scenario`` in a process of its own.

    For tests that judge the API's view of arrival times (per-second limits): a sandbox in the
    test's event loop handles requests late whenever the roles under test keep that loop busy,
    and then counts requests sent a second apart as one burst that was never on the wire.
    """

    def __init__(self, scenario: str, workdir: Path) -> None:
        self._scenario = workdir / "sandbox-scenario.yaml"
        self._log = workdir / "sandbox.log"
        self._scenario.write_text(scenario)
        self._port = free_port()
        self._role: Role | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return self.root_url + API_PREFIX

    @property
    def admin_url(self) -> str:
        return self.root_url + ADMIN_PREFIX

    async def __aenter__(self) -> SandboxProcess:
        args = ["--scenario", str(self._scenario), "--port", str(self._port)]
        self._role = Role("sandbox", {}, self._log, args)
        await self._role.serving(f"{self.admin_url}/stats")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._role is not None:
            self._role.stop()
