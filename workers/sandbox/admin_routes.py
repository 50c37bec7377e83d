"""The sandbox's admin routes under ``/_sandbox/`` (not part of TikTok's API): ``GET state``,
``GET stats``, ``POST clock/advance {"seconds"}``, ``POST clock/speed {"speed"}``,
``POST events {advertiser_id, action, ...}``, ``POST faults``, ``POST suspend {"path",
"seconds"}`` (a QPM suspension of one endpoint, or of all without ``path``, for ``seconds``
simulated seconds, by default the scenario's ``suspension_s``).

Usage::

    routes = admin_routes(api, endpoints=["/bc/balance/get/", ...])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from workers.contract import wire

from .admission import SANDBOX_APP, SandboxApi
from .scenario import EventAction, Faults
from .simulation import BalanceView, Simulation, UnknownAccountError

__all__ = ["ADMIN_PREFIX", "admin_routes"]

ADMIN_PREFIX = "/_sandbox"


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(wire.dumps(body), status_code=status_code, media_type="application/json")


class _AdminError(Exception):
    """A bad admin request, answered as HTTP 400 with ``{"error": ...}``."""


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = wire.loads(await request.body() or b"{}")
    except ValueError:
        raise _AdminError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _AdminError("body must be a JSON object")
    return body


def _non_negative_number(body: dict[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
        raise _AdminError(f"{name}: a number >= 0 is required")
    return float(value)


def _state(api: SandboxApi) -> dict[str, Any]:
    sim = api.simulation
    return {
        "sim_time": sim.now,
        "speed": api.clock.speed,
        "suspensions": api.limiter.suspensions(sim.now),
        "business_centers": [
            {
                "bc_id": center.bc_id,
                "name": center.name,
                "currency": center.currency,
                "balance": sim.bc_balances(center.bc_id).as_dict(),
                "advertisers": [_account_state(sim, adv_id) for adv_id in center.advertiser_ids],
            }
            for center in sim.business_centers
        ],
        "applied_events": [
            {"at": applied.at, **applied.action.model_dump(exclude_none=True)}
            for applied in sim.applied
        ],
    }


def _account_state(sim: Simulation, advertiser_id: str) -> dict[str, Any]:
    account = sim.account(advertiser_id)
    view: BalanceView = sim.balances(advertiser_id)
    return {
        "advertiser_id": advertiser_id,
        "name": account.name,
        "status": account.status,
        "currency": account.currency,
        "burn_rate_per_hour": account.burn_rate_per_hour,
        "balance_info": view.as_dict(),
    }


def admin_routes(api: SandboxApi, endpoints: Collection[str]) -> list[BaseRoute]:
    """The admin routes of ``api``; ``endpoints`` are the API paths ``suspend`` accepts."""

    def admin(
        action: Callable[[Request], Awaitable[Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            api.stats.requests_by_path[request.url.path] += 1
            try:
                api.sync()
                return _json(await action(request))
            except _AdminError as error:
                return _json({"error": str(error)}, status_code=400)

        return endpoint

    async def state(_: Request) -> Any:
        return _state(api)

    async def stats(_: Request) -> Any:
        return api.stats.as_dict()

    async def advance(request: Request) -> Any:
        api.clock.advance(_non_negative_number(await _body(request), "seconds"))
        api.sync()
        return {"sim_time": api.simulation.now}

    async def speed(request: Request) -> Any:
        api.clock.set_speed(_non_negative_number(await _body(request), "speed"))
        return {"sim_time": api.simulation.now, "speed": api.clock.speed}

    async def event(request: Request) -> Any:
        try:
            action = EventAction.model_validate(await _body(request))
            applied = api.simulation.apply_now(action)
        except (ValidationError, UnknownAccountError) as exc:
            raise _AdminError(str(exc)) from None
        return {
            "sim_time": applied.at,
            "applied": action.model_dump(exclude_none=True),
            "balance_info": api.simulation.balances(action.advertiser_id).as_dict(),
        }

    async def suspend(request: Request) -> Any:
        body = await _body(request)
        path = body.get("path")
        if path is not None and not (isinstance(path, str) and path in endpoints):
            raise _AdminError(f"path: not an endpoint of the sandbox: {path!r}")
        seconds = api.limiter.suspension.total_seconds()
        if "seconds" in body:
            seconds = _non_negative_number(body, "seconds")
        until = api.simulation.now + timedelta(seconds=seconds)
        api.limiter.suspend(SANDBOX_APP, path, until)
        return {"path": path, "until": until}

    async def faults(request: Request) -> Any:
        try:
            api.set_faults(Faults.model_validate(await _body(request)))
        except ValidationError as exc:
            raise _AdminError(str(exc)) from None
        return api.faults.model_dump()

    return [
        Route(f"{ADMIN_PREFIX}/state", admin(state), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/stats", admin(stats), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/clock/advance", admin(advance), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/clock/speed", admin(speed), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/events", admin(event), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/faults", admin(faults), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/suspend", admin(suspend), methods=["POST"]),
    ]
