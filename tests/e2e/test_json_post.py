"""The one JSON POST every incident and chat receiver makes: the reply is read with bounds.

A real local server answers with a reply far larger than anything we read, and with one
dripped forever; neither may hold the attempt or fill memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.deliver.json_post import REPLY_LIMIT, Reply, post_json
from service.deliver.receivers import Outcome
from workers.http_server import AsgiServer


async def huge(request: Request) -> Response:
    return Response(b'{"errors": ["' + b"x" * (8 * 1024 * 1024) + b'"]}', status_code=400)


async def drip(request: Request) -> StreamingResponse:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b" "
            await asyncio.sleep(0.05)

    return StreamingResponse(forever(), status_code=200)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = Starlette(
        routes=[Route("/huge", huge, methods=["POST"]), Route("/drip", drip, methods=["POST"])]
    )
    async with AsgiServer(app) as running:
        yield running.url


async def test_a_huge_reply_is_read_only_up_to_the_limit(server: str) -> None:
    async with httpx.AsyncClient() as http:
        reply = await post_json(http, f"{server}/huge", {"a": 1}, headers={}, timeout_s=30)
    assert isinstance(reply, Reply)
    assert len(reply.body) == REPLY_LIMIT
    outcome = reply.outcome(datetime.now(UTC))
    assert outcome.result == "failed"
    assert outcome.detail.startswith('HTTP 400: {"errors": ["xxx')
    assert len(outcome.detail) < 400


async def test_a_dripped_reply_cannot_outlast_the_timeout(server: str) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(60):  # a hang fails, not blocks
        outcome = await post_json(http, f"{server}/drip", {"a": 1}, headers={}, timeout_s=1)
    assert isinstance(outcome, Outcome)
    assert (outcome.result, outcome.detail) == ("retry", "timeout after 1 s")
