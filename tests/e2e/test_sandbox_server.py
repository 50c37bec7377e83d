"""The sandbox as a real HTTP server on a port: it serves and advances its clock, and says when
its port is taken. (Its API, called in process, is tests/unit/test_sandbox.py.)"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from tests.support.sandbox_asgi import AUTH, BC, START, scenario
from workers.contract import wire
from workers.sandbox import SandboxServer


async def test_real_server_on_port_zero() -> None:
    async with SandboxServer(scenario(speed=3600), port=0) as sb:
        assert sb.port > 0
        assert sb.base_url == f"http://127.0.0.1:{sb.port}/open_api/v1.3"
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as http:
            first = wire.loads((await http.get("/advertiser/balance/get/?bc_id=" + BC)).content)
            await asyncio.sleep(0.3)  # 0.3 real s = 18 simulated minutes of spend at 1/h
            later = wire.loads((await http.get("/advertiser/balance/get/?bc_id=" + BC)).content)
        assert first["code"] == later["code"] == 0
        grant = [
            body["data"]["advertiser_account_list"][0]["grant_balance"] for body in (first, later)
        ]
        assert grant[1] < grant[0] <= Decimal("10.00")
        async with httpx.AsyncClient() as admin:
            state = (await admin.get(f"{sb.admin_url}/state")).json()
        assert datetime.fromisoformat(state["sim_time"]) > START
    with pytest.raises(RuntimeError):
        _ = sb.port


async def test_real_server_reports_a_port_in_use() -> None:
    async with SandboxServer(scenario(), port=0) as first:
        second = SandboxServer(scenario(), port=first.port)
        with pytest.raises(OSError, match="could not listen"):
            await second.start()
