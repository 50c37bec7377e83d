"""A real local HTTP server that records every request and answers as scripted.

Stands in for the JSON APIs of PagerDuty, Opsgenie, Teams, Discord, Telegram and Apprise:
any method and path; each request is kept with its path, query, headers and JSON body.

``async with RecordingServer([Reply(429, {"Retry-After": "3"})]) as api: api.url``
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workers.http_server import AsgiServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # JSON-encoded when not bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class RecordingServer:
    def __init__(self, answers: list[Answer] | None = None, default: Answer | None = None) -> None:
        self.answers = list(answers or [])
        self.default = default or Answer()
        self.requests: list[Recorded] = []
        app = Starlette(
            routes=[Route("/{path:path}", self._any, methods=["GET", "POST", "PUT", "DELETE"])]
        )
        self._server = AsgiServer(app)

    @property
    def url(self) -> str:
        return self._server.url

    async def _any(self, request: Request) -> Response:
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                body=await request.body(),
            )
        )
        answer = self.answers.pop(0) if self.answers else self.default
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        headers = {"content-type": "application/json", **answer.headers}
        return Response(body, status_code=answer.status, headers=headers)

    async def __aenter__(self) -> RecordingServer:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()
