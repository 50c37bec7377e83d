"""The wired end-to-end run: the sandbox scenario with its token and accounts, settings that
point the poller at a sandbox and the notifier at a webhook sink, the service and poller roles
running in process, and the sandbox's admin calls (its clock, its events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from config.settings import (
    DetectSettings,
    NotifySettings,
    Settings,
    TikTokSettings,
)
from service.roles import poller_role, service_role
from tests.support.polls import FAST_POLLS
from tests.support.receiver import WebhookSink
from tests.support.scenarios import scenario_text
from workers.sandbox import SandboxServer

TOKEN = "e2e-token-5b0c6a1f9d"
DRAINING = "7100000000001"
HEALTHY = "7100000000002"
HOUR = 3600

SCENARIO = scenario_text("end_to_end", TOKEN=TOKEN, DRAINING=DRAINING, HEALTHY=HEALTHY)


def sandbox_api(
    base_url: str, token: str, bc_ids: list[str] | str, **options: Any
) -> TikTokSettings:
    """The client settings of a sandbox at ``base_url``: its token, business centers, options."""
    return TikTokSettings(
        base_url=base_url, access_token=SecretStr(token), bc_ids=bc_ids, **options
    )


def wired(settings: Settings, sandbox: SandboxServer, sink: WebhookSink, **tiktok: Any) -> Settings:
    """``wired_with`` the scenario's token and business center on ``sandbox``."""
    token = tiktok.pop("token", TOKEN)
    api = sandbox_api(sandbox.base_url, token, ["7000000000001"], **tiktok)
    return wired_with(settings, api, sink)


def wired_with(settings: Settings, tiktok: TikTokSettings, sink: WebhookSink) -> Settings:
    """``settings`` polling the API ``tiktok`` describes, fast, and notifying ``sink``."""
    hook, route = sink.receiver_and_route("e2e")
    return settings.model_copy(
        update={
            "tiktok": tiktok,
            "poll": FAST_POLLS,
            # Wall-clock staleness is not what these tests are about: only far-off silence.
            "detect": DetectSettings(stale_intervals=200),
            "notify": NotifySettings(console=False, receivers=[hook], route=route),
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[list[Any]]:
    """The service and poller roles in process; the pollers, as ``Any`` for tests that look
    at a subclass's insides."""
    url = settings.redis_url or ""
    async with service_role(settings, url), poller_role(settings, url) as pollers:
        yield pollers


async def admin(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sandbox.admin_url}{path}", json=body)
        response.raise_for_status()
