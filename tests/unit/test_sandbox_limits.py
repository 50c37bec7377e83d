"""The sandbox's rate limits: QPS, QPM and QPD per app and per endpoint, and the QPM suspension
(in simulated time, so at speed 0 it lasts until the test advances the clock)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.support.fake_time import FakeMonotonic
from tests.support.sandbox_asgi import (
    BC,
    COST,
    advance,
    api_get,
    asgi_client,
    scenario,
)
from workers.sandbox import ADMIN_PREFIX, Sandbox

BALANCE = "/bc/balance/get/"


async def codes(http: httpx.AsyncClient, path: str, count: int) -> list[int]:
    return [(await api_get(http, path, bc_id=BC))["code"] for _ in range(count)]


async def test_going_over_the_minute_limit_suspends_for_five_simulated_minutes() -> None:
    real = FakeMonotonic(1000.0)
    sandbox = Sandbox(scenario(qps_limit=10, qpm_limit=12), monotonic=real)
    async with asgi_client(sandbox) as http:
        assert await codes(http, BALANCE, 10) == [0] * 10
        real.now += 1.5
        # Two more fit the minute; the 13th goes over it and suspends the app.
        assert await codes(http, BALANCE, 3) == [0, 0, 40100]
        # A minute later the window is empty again, but the suspension holds: it ends in
        # simulated time (speed 0: only when the clock moves).
        real.now += 120
        assert await codes(http, COST, 2) == [40100, 40100]
        state = (await http.get(f"{ADMIN_PREFIX}/state")).json()
        assert list(state["suspensions"]) == ["sandbox-app *"]
        await advance(http, 299)
        assert await codes(http, BALANCE, 1) == [40100]
        await advance(http, 1.5)
        real.now += 120  # the refused calls have left the minute window too
        assert await codes(http, BALANCE, 1) == [0]
    # The call that went over, and the three refused while suspended.
    assert sandbox.stats.suspended == 4
    assert sandbox.stats.throttled == 4


async def test_limits_per_endpoint_count_each_endpoint_apart() -> None:
    real = FakeMonotonic(1000.0)
    sandbox = Sandbox(
        scenario(qps_limit=3, rate_limit_scope="endpoint", endpoint_limits={COST: {"qps": 1}}),
        monotonic=real,
    )
    async with asgi_client(sandbox) as http:
        assert await codes(http, BALANCE, 4) == [0, 0, 0, 40100]
        # Another endpoint has its own window (and its own, lower, limit).
        assert await codes(http, COST, 2) == [0, 40100]


async def test_an_endpoint_limit_adds_to_the_app_limit() -> None:
    real = FakeMonotonic(1000.0)
    sandbox = Sandbox(scenario(qps_limit=4, endpoint_limits={COST: {"qps": 1}}), monotonic=real)
    async with asgi_client(sandbox) as http:
        assert await codes(http, COST, 2) == [0, 40100]
        # The app's window holds both cost calls: two more balance calls fill it.
        assert await codes(http, BALANCE, 3) == [0, 0, 40100]


async def test_the_day_limit_starts_again_at_simulated_midnight_utc() -> None:
    real = FakeMonotonic(1000.0)
    sandbox = Sandbox(scenario(qps_limit=100, qpd_limit=3), monotonic=real)
    async with asgi_client(sandbox) as http:
        assert await codes(http, BALANCE, 4) == [0, 0, 0, 40100]
        await advance(http, timedelta(hours=23).total_seconds())
        assert await codes(http, BALANCE, 1) == [40100]  # still the same UTC day
        await advance(http, timedelta(hours=1).total_seconds())
        assert await codes(http, BALANCE, 3) == [0, 0, 0]
    assert sandbox.stats.suspended == 0


async def test_a_suspension_forced_on_one_endpoint_leaves_the_others() -> None:
    sandbox = Sandbox(scenario(qps_limit=100))
    async with asgi_client(sandbox) as http:
        forced = await http.post(f"{ADMIN_PREFIX}/suspend", json={"path": BALANCE, "seconds": 60})
        assert forced.status_code == 200, forced.text
        assert await codes(http, BALANCE, 2) == [40100, 40100]
        assert await codes(http, COST, 1) == [0]
        await advance(http, 61)
        assert await codes(http, BALANCE, 1) == [0]
        bad = await http.post(f"{ADMIN_PREFIX}/suspend", json={"path": "/nope/"})
        assert bad.status_code == 400
    stats = (await asgi_client(sandbox).get(f"{ADMIN_PREFIX}/stats")).json()
    assert stats["suspended"] == 2


async def test_a_scheduled_suspension_starts_and_ends_in_simulated_time() -> None:
    planned = [{"at": "+2h", "path": BALANCE, "seconds": 3600}]
    sandbox = Sandbox(scenario(qps_limit=100, suspensions=planned))
    async with asgi_client(sandbox) as http:
        assert await codes(http, BALANCE, 1) == [0]
        await advance(http, 2 * 3600)
        assert await codes(http, BALANCE, 1) == [40100]
        assert await codes(http, COST, 1) == [0]
        await advance(http, 3601)
        assert await codes(http, BALANCE, 1) == [0]
