"""The sandbox in process for tests: a two-account scenario (one draining, one steady) with its
token and ids, an ASGI client on a ``Sandbox``, and one API call through it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from workers.contract import wire
from workers.sandbox import ADMIN_PREFIX, API_PREFIX, Sandbox, Scenario

START = datetime(2026, 11, 1, tzinfo=UTC)
TOKEN = "test-token"
AUTH = {"Access-Token": TOKEN}
BC = "7000000000001"
DRAIN, STEADY = "7100000000001", "7100000000002"


def advertiser(advertiser_id: str, **fields: Any) -> dict[str, Any]:
    return {"advertiser_id": advertiser_id, "name": f"Account {advertiser_id}", **fields}


def scenario(
    advertisers: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Scenario:
    if advertisers is None:
        advertisers = [
            advertiser(DRAIN, cash_balance="5.00", grant_balance="10.00", burn_rate_per_hour="1"),
            advertiser(STEADY, cash_balance="100.00", grant_balance="200.00"),
        ]
    raw: dict[str, Any] = {
        "start": START,
        "speed": 0,
        "access_token": TOKEN,
        "business_centers": [{"bc_id": BC, "name": "Agency", "advertisers": advertisers}],
        "events": events or [],
    }
    raw.update(fields)
    return Scenario.model_validate(raw)


def asgi_client(sandbox: Sandbox) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=sandbox.app)
    return httpx.AsyncClient(transport=transport, base_url="http://sandbox")


async def api_get(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    """One API call; JSON-typed params are sent as JSON text, as the real API wants."""
    query = {k: v if isinstance(v, str | int) else json.dumps(v) for k, v in params.items()}
    response = await http.get(f"{API_PREFIX}{path}", params=query, headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = wire.loads(response.content)
    return body


COST = "/bc/account/cost/get/"
TRANSACTIONS = "/bc/account/transaction/get/"


async def bc_report(http: httpx.AsyncClient, path: str, **filtering: Any) -> dict[str, Any]:
    """One of ``BC``'s reports (its cost, its transactions), filtered by ``filtering``."""
    return await api_get(http, path, bc_id=BC, filtering=filtering)


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    """Moves the sandbox's simulated clock on by ``seconds``."""
    moved = await http.post(f"{ADMIN_PREFIX}/clock/advance", json={"seconds": seconds})
    assert moved.status_code == 200
