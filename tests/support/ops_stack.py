"""The whole stack for the ops-surface tests: the demo scenario's sandbox, poller and service.

The sandbox clock is paused and advanced by the test (``advance``), so what the status page
and the metrics show is deterministic. The service role serves its HTTP app on a free port;
``Stack.url`` is where.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from config.api import ApiSettings
from config.settings import (
    DetectSettings,
    NotifySettings,
    Settings,
)
from service.roles import poller_role, service_role
from tests.support.end_to_end import sandbox_api
from tests.support.polls import FAST_POLLS
from tests.support.receiver import WebhookSink
from tests.support.waiting import eventually
from workers.sandbox import DEMO_SCENARIO, SandboxServer, load_scenario

TOKEN = "ops-stack-token-7f3a91c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = 3600
ADVERTISERS = sum(1 for _ in load_scenario(DEMO_SCENARIO).advertisers())
POLLS = FAST_POLLS.model_copy(update={"spend_lookback_days": 3})


@dataclass
class Stack:
    sandbox: SandboxServer
    sink: WebhookSink
    settings: Settings
    urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, headers=AUTH, timeout=30) as client:
            return await client.get(path, **kwargs)

    async def advance(self, hours: float) -> None:
        """Move the sandbox clock, then wait for the service to have seen a poll after it."""
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{self.sandbox.admin_url}/clock/advance", json={"seconds": hours * HOUR}
            )
            response.raise_for_status()
            now = datetime.fromisoformat(response.json()["sim_time"])

        async def caught_up() -> bool:
            accounts = (await self.get("/v1/accounts")).json()
            fresh = [
                a
                for a in accounts
                if a["observed_at"] and datetime.fromisoformat(a["observed_at"]) >= now
            ]
            # "Gone Account" drops out of the listings for a while in the demo scenario.
            return len(fresh) >= ADVERTISERS - 1

        await eventually(caught_up, within=30)


@asynccontextmanager
async def ops_stack(settings: Settings) -> AsyncIterator[Stack]:
    scenario = load_scenario(DEMO_SCENARIO)
    async with SandboxServer(scenario, speed=0) as sandbox, WebhookSink() as sink:
        hook, route = sink.receiver_and_route("e2e")
        wired = settings.model_copy(
            update={
                "tiktok": sandbox_api(
                    sandbox.base_url,
                    scenario.access_token,
                    [bc.bc_id for bc in scenario.business_centers],
                ),
                "poll": POLLS,
                "detect": DetectSettings(stale_intervals=200),
                "notify": NotifySettings(console=False, receivers=[hook], route=route),
                "api": ApiSettings(tokens=[SecretStr(TOKEN)], port=0),
                "credits": list(scenario.ledger.credits),
                "ladder_programs": list(scenario.ledger.ladder_programs),
            }
        )
        stack = Stack(sandbox, sink, wired)
        url = wired.redis_url or ""
        async with (
            service_role(wired, url, on_listening=stack.urls.append),
            poller_role(wired, url),
        ):

            async def tracked() -> bool:
                accounts = (await stack.get("/v1/accounts")).json()
                return sum(1 for a in accounts if a["observed_at"]) >= ADVERTISERS

            await eventually(tracked, within=30)
            yield stack
