"""A TikTok API stand-in that answers with reply fixtures written from TikTok's reference.

The fixtures (``tests/fixtures/tiktok/*.json``, one per endpoint) are copied from the field
tables and example replies of the public reference (``/work/shared/tiktok-api.md``), not from
the sandbox, so the client and parsers are tested against what the API says it sends. The
server is a real HTTP server on a free port; it records every request, and a test may swap
the answer of one endpoint (``answer``) for an error envelope or a per-request reply.

Usage::

    async with FixtureApi() as api:
        client = TikTokClient(TikTokSettings(base_url=api.base_url, ...))
        ...
        api.requests_to("/advertiser/balance/get/")    # [{"bc_id": "...", ...}, ...]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import paths
from workers.contract import wire
from workers.http_server import AsgiServer

FIXTURES = paths.FIXTURES / "tiktok"
TOKEN = "fixture-token-91c2"

# Endpoint path -> fixture file.
ENDPOINTS = {
    "/advertiser/balance/get/": "advertiser_balance_get.json",
    "/bc/balance/get/": "bc_balance_get.json",
    "/bc/account/cost/get/": "bc_account_cost_get.json",
    "/bc/account/transaction/get/": "bc_account_transaction_get.json",
    "/report/integrated/get/": "report_integrated_get.json",
    "/bc/get/": "bc_get.json",
}

Answer = Callable[[dict[str, Any]], dict[str, Any]]


def fixture(path: str) -> dict[str, Any]:
    """The reply fixture of an endpoint, parsed as the client parses replies."""
    reply: dict[str, Any] = wire.loads((FIXTURES / ENDPOINTS[path]).read_bytes())
    return reply


def error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "fixture-error", "data": {}}


@dataclass
class Request_:
    path: str
    params: dict[str, Any]
    token: str | None


@dataclass
class FixtureApi:
    """Serves every endpoint's fixture; ``answer[path]`` overrides one (given the params)."""

    answer: dict[str, Answer] = field(default_factory=dict)
    requests: list[Request_] = field(default_factory=list)

    def __post_init__(self) -> None:
        routes = [
            Route(f"/open_api/v1.3{path}", self._serve, methods=["GET"]) for path in ENDPOINTS
        ]
        self._server = AsgiServer(Starlette(routes=routes))

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/open_api/v1.3"

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [r.params for r in self.requests if r.path == path]

    async def _serve(self, request: Request) -> Response:
        path = request.url.path.removeprefix("/open_api/v1.3")
        # JSON-valued parameters are decoded, so tests compare structures, not text.
        params: dict[str, Any] = {}
        for name, text in request.query_params.items():
            try:
                params[name] = wire.loads(text) if text[:1] in "[{" else text
            except ValueError:
                params[name] = text
        self.requests.append(Request_(path, params, request.headers.get("Access-Token")))
        if request.headers.get("Access-Token") != TOKEN:
            body = error(40105, "Access token is incorrect or has been revoked.")
        else:
            body = self.answer[path](params) if path in self.answer else fixture(path)
        return Response(wire.dumps(body), media_type="application/json")

    async def __aenter__(self) -> FixtureApi:
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.stop()
