"""Bearer-token auth for the ``/v1`` routes (and ``/metrics`` unless public), in constant time.

``AuthFirst`` checks the token before the app sees the request, so an unauthenticated client
gets its 401 before a byte of its body is read or parsed (malformed JSON included); the
``BearerAuth`` dependency on the routes says the same in the OpenAPI document.

Usage::

    auth = BearerAuth(settings.api.tokens)
    app.include_router(router, dependencies=[Depends(auth)])
    app.add_middleware(AuthFirst, auth=auth, guarded=lambda path: path.startswith("/v1/"))
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["AuthFirst", "BearerAuth"]

_REQUIRED = "a valid bearer token is required"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class BearerAuth:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <one of the tokens>``."""

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def accepts(self, authorization: str) -> bool:
        """Whether an ``Authorization`` header value carries one of the tokens."""
        scheme, _, presented = authorization.partition(" ")
        given = presented.strip().encode()
        # Compare against every token, always: the time taken says nothing about which matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        return scheme.lower() == "bearer" and matched

    async def __call__(self, request: Request) -> None:
        if not self.accepts(request.headers.get("authorization", "")):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED, detail=_REQUIRED, headers=_CHALLENGE
            )


class AuthFirst:
    """ASGI middleware: 401 for a guarded path without a valid token, before the app runs."""

    def __init__(self, app: ASGIApp, *, auth: BearerAuth, guarded: Callable[[str], bool]) -> None:
        self.app = app
        self._auth = auth
        self._guarded = guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._guarded(scope["path"]):
            header = Headers(scope=scope).get("authorization", "")
            if not self._auth.accepts(header):
                refusal = JSONResponse({"detail": _REQUIRED}, status_code=401, headers=_CHALLENGE)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
