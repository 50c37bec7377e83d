"""A real local webhook receiver for the tests: verifies Standard Webhooks signatures.

It answers with scripted responses (status, headers, delay) in order, then 200, and records
every request it got, verified or not.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from config.notify import Route as NotifyRoute
from config.notify import WebhookReceiverSettings
from workers.http_server import AsgiServer

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None  # None when the signature did not verify

    @property
    def verified(self) -> bool:
        return self.payload is not None


class WebhookSink:
    """``async with WebhookSink([Reply(500)]) as sink: sink.url``"""

    def __init__(self, replies: list[Reply] | None = None, secret: str = SECRET) -> None:
        self.replies = list(replies or [])
        self.received: list[Received] = []
        self._secret = secret
        self._verifier = Webhook(secret)
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = AsgiServer(app)

    @property
    def url(self) -> str:
        return f"{self._server.url}/hook"

    def receiver_and_route(
        self,
        name: str,
        kinds: list[str] | None = None,
        *,
        group_by: list[str] | None = None,
        group_wait: timedelta = timedelta(0),
        group_interval: timedelta = timedelta(0),
    ) -> tuple[WebhookReceiverSettings, NotifyRoute]:
        """A webhook receiver that delivers here (signed with this sink's secret) and a route
        to it for ``kinds`` (globs; every kind unless given), as the README declares them.

        By default the route sends at once, one message per alert (``group_by: ["..."]``);
        a test that is about grouping chooses its own. Several sinks: make each route a child
        of one root (``continue: true`` for all to get an alert).
        """
        receiver = WebhookReceiverSettings(name=name, url=self.url, secret=SecretStr(self._secret))
        route = NotifyRoute(
            receiver=name,
            match={} if kinds is None else {"kind": kinds},
            group_by=["..."] if group_by is None else group_by,
            group_wait=group_wait,
            group_interval=group_interval,
        )
        return receiver, route

    def payloads(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if r.payload is not None]

    def arrived(self) -> list[str]:
        """``"kind status advertiser"`` per verified POST, in arrival order."""
        return [
            f"{p['type']} {p['data']['status']} {p['data']['advertiser_id']}"
            for p in self.payloads()
        ]

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload = self._verifier.verify(body, headers)
        except WebhookVerificationError:
            payload = None
        self.received.append(Received(headers=headers, body=body, payload=payload))
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(status_code=reply.status, headers=reply.headers)

    async def __aenter__(self) -> WebhookSink:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()


class SlackSink:
    """A stand-in for Slack's incoming-webhook endpoint: records the JSON, answers as scripted.

    ``async with SlackSink([Reply(429, {"Retry-After": "3"})]) as slack: slack.url``
    """

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.messages: list[dict[str, Any]] = []
        app = Starlette(routes=[Route("/services/T000/B000/XXXX", self._hook, methods=["POST"])])
        self._server = AsgiServer(app)

    @property
    def url(self) -> str:
        return f"{self._server.url}/services/T000/B000/XXXX"

    async def _hook(self, request: Request) -> Response:
        self.messages.append(json.loads(await request.body()))
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        text = "ok" if reply.status == 200 else "rate_limited"
        return Response(text, status_code=reply.status, headers=reply.headers)

    async def __aenter__(self) -> SlackSink:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()
