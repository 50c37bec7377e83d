"""The ``creditwatch`` command: demo, run, poller, service, sandbox, check-config, the
onboarding commands ``auth url|exchange|check``, and the notification commands deliveries,
silence, receivers and digest.

A bad setting exits with code 2 and one line naming it; secrets are never printed.

Usage::

    creditwatch demo --duration 90     # everything in one process, embedded Redis, sandbox API
    creditwatch run                    # poller + service against the real API
    creditwatch check-config           # the effective settings, secrets masked
    creditwatch auth check             # what each token reaches, and its Finance roles
    creditwatch deliveries list --failed    # also: deliveries replay, silence, receivers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path

import structlog
from pydantic import SecretStr

from config.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from service.auth_commands import add_auth_subcommands, run_auth
from service.connections import RedisTarget, connect
from service.deliver.commands import CommandError, add_subcommands, run_command
from service.embedded_redis import EmbeddedRedis
from service.logs import configure_logging
from service.roles import poller_role, service_role
from workers.contract.alerts import AlertTransition
from workers.poll_sources import demo_intervals
from workers.sandbox import (
    DEMO_SCENARIO,
    SandboxServer,
    Scenario,
    load_scenario,
    run_sandbox,
)

__all__ = ["main"]

log = structlog.get_logger(__name__)

EXIT_BAD_SETTING = 2
# Every source polled within seconds (hours of simulated time), under the default QPS budget.
DEMO_POLL = {**demo_intervals(), "spend_lookback_days": 3}

# The sandbox's spend figures do not lag, so reconciliation need not wait the real API's
# 24-48 h before it compares a day.
DEMO_DETECT = {"reconcile_lag_h": 0.0}

RoleFactory = Callable[[Settings, str], AbstractAsyncContextManager[object]]


def _fail(message: str) -> int:
    print(f"creditwatch: {message}", file=sys.stderr)
    return EXIT_BAD_SETTING


@asynccontextmanager
async def _redis_url(settings: Settings, *, fresh: bool = False) -> AsyncIterator[str]:
    """The configured Redis, or an embedded one with its data under ``data_dir``."""
    if settings.redis_url:
        yield settings.redis_url
        return
    folder = settings.data_dir / ("demo" if fresh else "redis")
    if fresh and folder.exists():
        shutil.rmtree(folder)
    with EmbeddedRedis(folder) as url:
        yield url


async def _until_stopped(duration_s: float | None) -> None:
    """Wait for Ctrl-C / SIGTERM, or for ``duration_s`` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration_s)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run_roles(settings: Settings, roles: Sequence[RoleFactory]) -> None:
    async with _redis_url(settings) as url, contextlib.AsyncExitStack() as stack:
        for role in roles:
            await stack.enter_async_context(role(settings, url))
        await _until_stopped(None)


async def _demo(settings: Settings, duration_s: float | None, speed: float | None) -> None:
    scenario = load_scenario(DEMO_SCENARIO)
    async with SandboxServer(scenario, speed=speed) as sandbox:
        demo = settings.model_copy(
            update={
                "tiktok": settings.tiktok.model_copy(
                    update={
                        "base_url": sandbox.base_url,
                        "access_token": SecretStr(scenario.access_token),
                        "bc_ids": [bc.bc_id for bc in scenario.business_centers],
                        # The demo polls the sandbox only, never a configured real token.
                        "connections": [],
                        "suspension_s": _demo_suspension_s(scenario, speed),
                    }
                ),
                "poll": settings.poll.model_copy(update=DEMO_POLL),
                "notify": settings.notify.model_copy(update={"console": True}),
                # The status page on the configured port, else on a free one (printed below).
                "api": settings.api.model_copy(
                    update={
                        "port": settings.api.port if "port" in settings.api.model_fields_set else 0
                    }
                ),
                # The scenario's ledger is what the demo's operators declared.
                "credits": list(scenario.ledger.credits),
                "ladder_programs": list(scenario.ledger.ladder_programs),
                "detect": settings.detect.model_copy(update=DEMO_DETECT),
            }
        )
        print(
            f"creditwatch demo: sandbox API at {sandbox.base_url} "
            f"({scenario.speed:g} simulated seconds per second), polling every "
            f"{DEMO_POLL['balance_interval_s']:g} s. Alerts appear below; Ctrl-C to stop.",
            flush=True,
        )
        async with (
            _redis_url(demo, fresh=True) as url,
            service_role(demo, url, console=sys.stdout, on_listening=_print_status_page),
            poller_role(
                demo, url, bc_zones={bc.bc_id: bc.timezone for bc in scenario.business_centers}
            ),
        ):
            await _until_stopped(duration_s)
    print("creditwatch demo: stopped.", flush=True)


def _demo_suspension_s(scenario: Scenario, speed: float | None) -> float:
    """The client's pause after a suspension, in real seconds: the sandbox's suspension lasts
    simulated seconds, so at 3600x a 5-minute one is over in 83 ms; pause at least 1 s."""
    speed = scenario.speed if speed is None else speed
    if speed <= 0:
        return scenario.suspension_s
    return max(1.0, scenario.suspension_s / speed)


def _print_status_page(url: str) -> None:
    print(f"creditwatch demo: status page at {url}/ (API docs at {url}/docs)", flush=True)


NOTIFY_COMMANDS = frozenset({"deliveries", "silence", "receivers", "digest"})


async def _notify_command(settings: Settings, args: argparse.Namespace) -> int:
    """``deliveries``, ``silence``, ``receivers``: they act on the state in Redis."""
    async with _redis_url(settings) as url:
        redis, broker = connect(url)

        async def publish(transition: AlertTransition) -> None:
            await broker.connect()
            streams = settings.streams
            await broker.publish(transition.to_json(), stream=streams.alerts, maxlen=streams.maxlen)

        try:
            return await run_command(args, settings, redis, publish=publish, out=sys.stdout)
        finally:
            await broker.stop()
            await redis.aclose()


def _one_shot(settings: Settings, args: argparse.Namespace) -> int:
    """The commands that run once and exit: notification (on Redis) and auth (on the API)."""
    try:
        if args.command == "auth":
            return asyncio.run(run_auth(args, settings, sys.stdout))
        return asyncio.run(_notify_command(settings, args))
    except (CommandError, SettingsError) as error:
        return _fail(str(error))


def _check_config(settings: Settings) -> int:
    # SecretStr dumps as "**********" in JSON mode: secrets stay masked.
    print(json.dumps(settings.model_dump(mode="json"), indent=2, default=str))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="creditwatch",
        description="Alerts for TikTok Ads credits: low, exhausted, frozen, expiring.",
        epilog=f"Settings come from {ENV_PREFIX}* variables and {ENV_PREFIX}CONFIG_FILE.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="everything in one process against the sandbox")
    demo.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    demo.add_argument("--speed", type=float, default=None, help="simulated s per real s")
    commands.add_parser("run", help="poller and service roles against the real API")
    commands.add_parser("poller", help="the poller role only")
    commands.add_parser("service", help="the service role (detectors, notifiers) only")
    sandbox = commands.add_parser("sandbox", help="serve the TikTok API simulator")
    sandbox.add_argument("--scenario", type=Path, default=DEMO_SCENARIO)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8787)
    sandbox.add_argument("--speed", type=float, default=None)
    commands.add_parser("check-config", help="validate settings and print them, masked")
    add_auth_subcommands(commands)
    add_subcommands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if settings.redis_url:
            try:
                RedisTarget.parse(settings.redis_url)
            except ValueError as error:
                raise SettingsError(f"{ENV_PREFIX}REDIS_URL: {error}") from None
        if args.command in {"run", "poller"}:
            settings.require_api_access()
    except SettingsError as error:
        return _fail(str(error))
    level = settings.log_level
    if args.command == "demo" and f"{ENV_PREFIX}LOG_LEVEL" not in os.environ:
        level = "warning"  # the demo's console is for alerts
    configure_logging(level, settings.log_format)

    if args.command == "check-config":
        return _check_config(settings)
    if args.command in NOTIFY_COMMANDS or args.command == "auth":
        return _one_shot(settings, args)
    if args.command == "sandbox":
        run_sandbox(args.scenario, host=args.host, port=args.port, speed=args.speed)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "demo":
            asyncio.run(_demo(settings, args.duration, args.speed))
        else:
            roles: dict[str, list[RoleFactory]] = {
                "run": [service_role, poller_role],
                "poller": [partial(poller_role, serve_metrics=True)],
                "service": [service_role],
            }
            asyncio.run(_run_roles(settings, roles[args.command]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
