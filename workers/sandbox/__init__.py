"""The sandbox: a bundled simulator of the TikTok Business API, driven by a scenario file.

It drives the demo and the end-to-end tests. A client pointed at its ``base_url`` cannot tell
it from the real API for the endpoints it serves (see ``server``).

Usage::

    from workers.sandbox import DEMO_SCENARIO, SandboxServer, load_scenario

    async with SandboxServer(load_scenario(DEMO_SCENARIO), port=0) as sb:
        ...  # point the TikTok client at sb.base_url, the admin API at sb.admin_url
"""

from __future__ import annotations

from pathlib import Path

from .clock import SimClock
from .scenario import (
    EventAction,
    Faults,
    Scenario,
    ScenarioError,
    ScenarioEvent,
    load_scenario,
    parse_scenario,
)
from .server import (
    ADMIN_PREFIX,
    API_PREFIX,
    DEFAULT_PORT,
    Sandbox,
    SandboxServer,
    SandboxStats,
    run_sandbox,
    serve,
)
from .simulation import BalanceView, DaySpend, Simulation, Transaction, UnknownAccountError

__all__ = [
    "ADMIN_PREFIX",
    "API_PREFIX",
    "DEFAULT_PORT",
    "DEMO_SCENARIO",
    "BalanceView",
    "DaySpend",
    "EventAction",
    "Faults",
    "Sandbox",
    "SandboxServer",
    "SandboxStats",
    "Scenario",
    "ScenarioError",
    "ScenarioEvent",
    "SimClock",
    "Simulation",
    "Transaction",
    "UnknownAccountError",
    "load_scenario",
    "parse_scenario",
    "run_sandbox",
    "serve",
]

# Package data (pyproject: workers = ["scenarios/*.yaml"]), so it ships in the wheel too.
DEMO_SCENARIO: Path = Path(__file__).resolve().parent.parent / "scenarios" / "demo.yaml"
