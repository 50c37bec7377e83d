"""The sandbox HTTP server: TikTok Business API endpoints served from a simulation.

A client pointed at ``http://HOST:PORT/open_api/v1.3`` sees the contract of
``/work/shared/tiktok-api.md``: the ``{code, message, request_id, data}`` envelope (HTTP 200 even
for API errors), the ``Access-Token`` header (else 40105), QPS, QPM and QPD limits per app and
per endpoint with the QPM suspension (else 40100; see ``limits.py`` for how they scale with the
speed), 40002 for bad parameters, 40001 for unknown business centers or
advertisers, money as JSON numbers with two decimals. Injected faults (HTTP 500, code 50000,
latency) come from a seeded RNG so runs repeat.

Every API reply carries an HTTP ``Date`` header with the *simulated* time (uvicorn's own is
off), so a client that stamps what it sees with the API's time lives in simulated time too.

This module assembles the areas, one module each: the request pipeline every endpoint
shares (``admission``: token, limits, faults, envelope, stats), the endpoints by API area
(``balance_routes``: ``/advertiser/balance/get/``, ``/bc/balance/get/``,
``/advertiser/info/``; ``spend_routes``: ``/bc/account/cost/get/``,
``/report/integrated/get/``; ``transaction_routes``: ``/bc/account/transaction/get/``), their
query parameters (``params``), the admin routes under ``/_sandbox/`` (``admin_routes``), and
the OAuth endpoints, ``/bc/get/`` and the portal page (``oauth_routes``). Who may call what
(several tokens, each reaching its own business centers with a Finance role or not) is in
``grants``.

Usage::

    async with SandboxServer(load_scenario(path), port=0) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url) as http:
            await http.get("/bc/balance/get/", params={"bc_id": "7000000000001"},
                           headers={"Access-Token": "sandbox-token"})

    app = Sandbox(scenario).app      # in-process, for httpx.ASGITransport
    run_sandbox("workers/scenarios/demo.yaml", port=8090)     # blocking, for the CLI
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from workers.http_server import AsgiServer

from . import balance_routes, spend_routes, transaction_routes
from .admin_routes import ADMIN_PREFIX, admin_routes
from .admission import API_PREFIX, SANDBOX_APP, SandboxApi, SandboxStats
from .clock import SimClock
from .grants import Grants
from .limits import Limits, RateLimiter
from .oauth_routes import bc_info, oauth_routes
from .params import Handler
from .scenario import Faults, Scenario, load_scenario
from .simulation import Simulation

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_PORT",
    "Sandbox",
    "SandboxServer",
    "SandboxStats",
    "run_sandbox",
    "serve",
]

DEFAULT_PORT = 8090

log = structlog.get_logger(__name__)

_API_ROUTES: dict[str, Handler] = {
    **balance_routes.ROUTES,
    **spend_routes.ROUTES,
    **transaction_routes.ROUTES,
}


def _routes(api: SandboxApi) -> list[BaseRoute]:
    api_routes: list[BaseRoute] = [
        Route(f"{API_PREFIX}{path}", api.route(handler), methods=["GET"])
        for path, handler in _API_ROUTES.items()
    ]
    return api_routes + admin_routes(api, _API_ROUTES)


def _limiter(scenario: Scenario) -> RateLimiter:
    limiter = RateLimiter(
        Limits(scenario.qps_limit, scenario.qpm_limit, scenario.qpd_limit),
        endpoints={
            path: Limits(own.qps, own.qpm, own.qpd)
            for path, own in scenario.endpoint_limits.items()
        },
        scope=scenario.rate_limit_scope,
        suspension=timedelta(seconds=scenario.suspension_s),
    )
    for planned in scenario.suspensions:
        start = scenario.event_time(planned)
        until = start + timedelta(seconds=planned.seconds)
        limiter.suspend(SANDBOX_APP, planned.path, until, start=start)
    return limiter


class Sandbox:
    """A scenario brought to life: simulation, clock, ASGI app and request statistics.

    ``monotonic`` drives both the clock and the QPS window, so tests can fake real time.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.simulation = Simulation(scenario)
        self.clock = SimClock(
            scenario.start, scenario.speed if speed is None else speed, monotonic=monotonic
        )
        self.grants = Grants(
            scenario.app,
            scenario.tokens,
            default_token=scenario.access_token,
            bc_ids=[bc.bc_id for bc in scenario.business_centers],
        )
        self._api = SandboxApi(
            self.simulation,
            self.clock,
            access_token=scenario.access_token,
            limiter=_limiter(scenario),
            faults=scenario.faults,
            monotonic=monotonic,
            grants=self.grants,
        )
        self.app = Starlette(
            routes=_routes(self._api)
            + oauth_routes(
                self._api, self.grants, bc_info=bc_info(scenario), admin_prefix=ADMIN_PREFIX
            )
        )

    @property
    def stats(self) -> SandboxStats:
        return self._api.stats

    @property
    def faults(self) -> Faults:
        return self._api.faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults and reseed their dice."""
        self._api.set_faults(faults)

    def sync(self) -> Simulation:
        """The simulation, brought up to the clock's current time."""
        self._api.sync()
        return self.simulation


# --- running it -------------------------------------------------------------------------------


class SandboxServer:
    """The sandbox on a real socket, in the current event loop.

    Simulated time stands still until the server listens, so a slow start costs no spend.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float | None = None,
        handle_signals: bool = False,
    ) -> None:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        self._speed = scenario.speed if speed is None else speed
        self.sandbox = Sandbox(scenario, speed=0)
        self._http = AsgiServer(
            self.sandbox.app,
            host=host,
            port=port,
            handle_signals=handle_signals,
            date_header=False,
        )

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def root_url(self) -> str:
        return self._http.url

    @property
    def base_url(self) -> str:
        """Where a TikTok client points instead of ``https://business-api.tiktok.com/...``."""
        return f"{self.root_url}{API_PREFIX}"

    @property
    def admin_url(self) -> str:
        return f"{self.root_url}{ADMIN_PREFIX}"

    async def start(self) -> None:
        """Listen; returns once the port is bound. Raises OSError if it cannot bind."""
        await self._http.start()
        self.sandbox.clock.set_speed(self._speed)

    async def wait(self) -> None:
        """Until the server stops (a signal, when ``handle_signals``, or ``stop``)."""
        await self._http.wait()

    async def stop(self) -> None:
        """Stop listening and wait for open requests to finish."""
        await self._http.stop()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


async def serve(
    scenario: Scenario | str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float | None = None,
    *,
    handle_signals: bool = False,
) -> None:
    """Run the sandbox until cancelled (or, with ``handle_signals``, until Ctrl-C)."""
    async with SandboxServer(
        scenario, host=host, port=port, speed=speed, handle_signals=handle_signals
    ) as server:
        if handle_signals:
            # The standalone sandbox owns its process: the simulation (every account of the
            # scenario) lives as long as it does, so it is moved out of the collector's reach.
            # Otherwise full collections over 10,000 accounts stall the API for 100-200 ms,
            # which its own QPS window then counts as bursts (40100 to a client that kept
            # to the limit).
            gc.collect()
            gc.freeze()
        log.info(
            "sandbox.listening",
            base_url=server.base_url,
            admin_url=server.admin_url,
            speed=server.sandbox.clock.speed,
        )
        await server.wait()


def run_sandbox(
    scenario_path: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    speed: float | None = None,
) -> None:
    """Blocking entry point for ``creditwatch sandbox``; returns after Ctrl-C.

    Raises ScenarioError for a bad scenario and OSError if the port cannot be bound.
    """
    scenario = load_scenario(scenario_path)
    # uvicorn re-raises the SIGINT it handled once it has shut down; that is our normal exit.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(scenario, host, port, speed, handle_signals=True))
