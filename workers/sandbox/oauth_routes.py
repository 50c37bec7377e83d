"""The sandbox's authorization routes: the OAuth endpoints, ``/bc/get/``, the portal page.

API routes (under ``/open_api/v1.3``): ``POST /oauth2/access_token/`` ``{app_id, secret,
auth_code}`` -> ``{access_token, advertiser_ids, scope}``; ``POST /oauth2/revoke_token/``
``{app_id, secret, access_token}``; ``GET /oauth2/advertiser/get/`` (query ``app_id``,
``secret``, header ``Access-Token``) -> ``{list: [{advertiser_id, advertiser_name}]}``;
``GET /bc/get/`` (optional ``bc_id``, ``page``, ``page_size`` 1-50) -> ``{list: [{bc_info,
user_role, ext_user_role}], page_info}`` for what the token reaches. ``GET /portal/auth``
(``app_id``, ``state``, ``redirect_uri``) approves at once and redirects with a fresh
``auth_code``. Admin: ``POST /_sandbox/oauth/auth_codes`` ``{business_centers?: [{bc_id,
user_role, finance_role}]}`` -> ``{auth_code, expires_at}``. The rules are ``grants.Grants``.

Usage::

    routes = oauth_routes(api, grants, bc_info={"7000000000001": {...}})
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from email.utils import format_datetime
from functools import partial
from math import ceil
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from workers.contract import wire

from .admission import API_PREFIX
from .envelope import BAD_PARAMETER, ApiError, envelope
from .grants import AUTH_CODE_TTL, Grants, Reach
from .params import MAX_PAGE_SIZE, Handler
from .scenario import Scenario
from .simulation import Simulation

__all__ = ["bc_info", "oauth_routes"]

_SCOPE = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
_reach_list: TypeAdapter[list[Reach]] = TypeAdapter(list[Reach])


class _Api(Protocol):
    """The server's request pipeline (token, QPS, faults, Date header)."""

    simulation: Simulation

    def sync(self) -> None: ...

    def call(self, request: Request, handler: Handler) -> Awaitable[Response]: ...


def _page(params: QueryParams, name: str, default: int, high: int) -> int:
    text = params.get(name)
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise ApiError(BAD_PARAMETER, f"{name}: must be an integer") from None
    if not 1 <= value <= high:
        raise ApiError(BAD_PARAMETER, f"{name}: must be between 1 and {high}")
    return value


def _bc_get(
    grants: Grants,
    bc_info: dict[str, dict[str, Any]],
    token: str,
    _: Simulation,
    params: QueryParams,
) -> dict[str, Any]:
    """``/bc/get/``: the Business Centers ``token`` reaches, with the user's roles."""
    page = _page(params, "page", 1, 10_000)
    page_size = _page(params, "page_size", 10, MAX_PAGE_SIZE)
    wanted = params.get("bc_id")
    rows = [
        {
            "bc_info": bc_info[reach.bc_id],
            "user_role": reach.user_role,
            "ext_user_role": {"finance_role": reach.finance_role} if reach.finance_role else {},
        }
        for reach in grants.reach(token).values()
        if reach.bc_id in bc_info and wanted in (None, reach.bc_id)
    ]
    total = len(rows)
    return {
        "list": rows[(page - 1) * page_size : page * page_size],
        "page_info": {
            "page": page,
            "page_size": page_size,
            "total_number": total,
            "total_page": ceil(total / page_size),
        },
    }


def _advertiser_get(
    grants: Grants, token: str, sim: Simulation, params: QueryParams
) -> dict[str, Any]:
    """``/oauth2/advertiser/get/``: the advertisers of the Business Centers ``token`` reaches."""
    grants.check_app(params.get("app_id"), params.get("secret"))
    rows = []
    for bc_id in grants.reach(token):
        for advertiser_id in sim.business_center(bc_id).advertiser_ids:
            account = sim.account(advertiser_id)
            rows.append({"advertiser_id": advertiser_id, "advertiser_name": account.name})
    return {"list": rows}


def _advertiser_ids(grants: Grants, sim: Simulation, token: str) -> list[str]:
    return [
        advertiser_id
        for bc_id in grants.reach(token)
        for advertiser_id in sim.business_center(bc_id).advertiser_ids
    ]


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = wire.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(BAD_PARAMETER, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(BAD_PARAMETER, "body must be a JSON object")
    return body


def bc_info(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """``bc_info`` of ``/bc/get/`` for each business center of the scenario."""
    return {
        bc.bc_id: {
            "bc_id": bc.bc_id,
            "name": bc.name,
            "company": bc.name,
            "currency": bc.currency,
            "registered_area": "US",
            "status": "ENABLE",
            "timezone": getattr(bc, "timezone", "UTC"),
            "type": "AGENCY",
        }
        for bc in scenario.business_centers
    }


def oauth_routes(
    api: _Api, grants: Grants, *, bc_info: dict[str, dict[str, Any]], admin_prefix: str
) -> list[BaseRoute]:
    """The routes above, on the server's pipeline ``api``; ``bc_info`` by bc_id."""

    def dated(response: Response) -> Response:
        response.headers["date"] = format_datetime(api.simulation.now.astimezone(UTC), usegmt=True)
        return response

    async def posted(
        request: Request, action: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """A POST endpoint: no Access-Token; the app's id and secret are in the body."""
        api.sync()
        try:
            body = await _json_body(request)
            grants.check_app(body.get("app_id"), body.get("secret"))
            data = action(body)
        except ApiError as error:
            return dated(envelope(error.code, error.message, {}))
        return dated(envelope(0, "OK", data))

    def exchange(body: dict[str, Any]) -> dict[str, Any]:
        sim = api.simulation
        token = grants.exchange(body.get("auth_code"), sim.now)
        return {
            "access_token": token,
            "advertiser_ids": _advertiser_ids(grants, sim, token),
            "scope": _SCOPE,
        }

    def revoke(body: dict[str, Any]) -> dict[str, Any]:
        grants.revoke(body.get("access_token"))
        return {}

    async def access_token(request: Request) -> Response:
        return await posted(request, exchange)

    async def revoke_token(request: Request) -> Response:
        return await posted(request, revoke)

    def with_token(
        handler: Callable[..., dict[str, Any]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            token = request.headers.get("Access-Token") or ""
            return await api.call(request, partial(handler, token))

        return endpoint

    async def portal(request: Request) -> Response:
        params = request.query_params
        redirect_uri = params.get("redirect_uri", "")
        if params.get("app_id") != grants.app.app_id or not urlsplit(redirect_uri).scheme:
            return JSONResponse({"error": "unknown app_id or no redirect_uri"}, status_code=400)
        api.sync()
        code = grants.issue_code(api.simulation.now)
        query = urlencode({"auth_code": code, "state": params.get("state", "")})
        joiner = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{joiner}{query}", status_code=302)

    async def auth_codes(request: Request) -> Response:
        api.sync()
        try:
            body = wire.loads(await request.body() or b"{}")
            wanted = body.get("business_centers") if isinstance(body, dict) else None
            reach = None if wanted is None else _reach_list.validate_python(wanted)
        except (ValueError, ValidationError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        now = api.simulation.now
        code = grants.issue_code(now, reach)
        return Response(
            wire.dumps({"auth_code": code, "expires_at": (now + AUTH_CODE_TTL).isoformat()}),
            media_type="application/json",
        )

    return [
        Route(f"{API_PREFIX}/oauth2/access_token/", access_token, methods=["POST"]),
        Route(f"{API_PREFIX}/oauth2/revoke_token/", revoke_token, methods=["POST"]),
        Route(
            f"{API_PREFIX}/oauth2/advertiser/get/",
            with_token(partial(_advertiser_get, grants)),
            methods=["GET"],
        ),
        Route(
            f"{API_PREFIX}/bc/get/", with_token(partial(_bc_get, grants, bc_info)), methods=["GET"]
        ),
        Route("/portal/auth", portal, methods=["GET"]),
        Route(f"{admin_prefix}/oauth/auth_codes", auth_codes, methods=["POST"]),
    ]
