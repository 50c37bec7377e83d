"""Schemathesis against the OpenAPI document: no request, valid or not, gets a 5xx.

Cases are generated from ``/openapi.json`` (positive and negative), sent with a valid bearer
token through an ASGI client to the app on a real Redis, and checked with schemathesis'
``not_a_server_error``. Bounded to a few hundred examples, so it stays quick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from config.api import ApiSettings
from config.notify import NotifySettings
from config.settings import Settings
from service.detect.state import encode_state
from service.http.app import ApiContext, create_app
from tests.support.api_account import account_state
from workers.poll_marks import PollMarks

TOKEN = "api-token-for-fuzzing-01"
EXAMPLES = 300


def hook(request: httpx.Request) -> httpx.Response:
    return httpx.Response(204)  # every subscriber answers the test event


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # One loop for the whole run: the app's Redis connections belong to it.
    running = asyncio.new_event_loop()
    yield running
    running.close()


def test_no_request_gets_a_server_error(
    settings: Settings, redis_url: str, prefix: str, loop: asyncio.AbstractEventLoop
) -> None:
    wired = settings.model_copy(
        update={
            "api": ApiSettings(tokens=[SecretStr(TOKEN)]),
            # No DNS lookups of generated host names: the URL guard has its own tests.
            "notify": NotifySettings(console=False, allow_private_urls=True),
        }
    )
    client = Redis.from_url(redis_url)
    mock = httpx.AsyncClient(transport=httpx.MockTransport(hook))
    app = create_app(
        ApiContext(
            settings=wired,
            redis=client,
            marks=PollMarks(client, wired.streams),
            consumers=lambda: (2, 2),
            asyncapi=lambda: {"asyncapi": "3.0.0"},
            started_at=time.time(),
            http=mock,
        )
    )
    state = account_state()
    loop.run_until_complete(
        client.set(wired.streams.key("state", state.advertiser_id), encode_state(state))
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cw")
    seen: dict[int, int] = {}

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs(headers={"Authorization": f"Bearer {TOKEN}"})
        kwargs.pop("base_url", None)
        # httpx wants cookies on the client and raw bodies as content.
        cookies = kwargs.pop("cookies", None) or {}
        if cookies:
            kwargs["headers"]["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if isinstance(kwargs.get("data"), bytes | str):
            kwargs["content"] = kwargs.pop("data")
        response = loop.run_until_complete(http.request(**kwargs))
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])

    try:
        check()
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(mock.aclose())
        loop.run_until_complete(client.aclose())
        sync = redis.Redis.from_url(redis_url)
        keys = list(sync.scan_iter(match=f"{prefix}:*"))
        if keys:
            sync.delete(*keys)
        sync.close()
    # The run reached past the auth and validation layers, not just 401/422.
    print("status codes:", dict(sorted(seen.items())))
    assert seen.get(200, 0) + seen.get(201, 0) > 10, seen
