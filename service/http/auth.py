"""Bearer-token auth for the ``/v1`` routes, compared in constant time.

Usage::

    app.include_router(router, dependencies=[Depends(BearerAuth(settings.api.tokens))])
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import HTTPException, Request, status
from pydantic import SecretStr

__all__ = ["BearerAuth"]


class BearerAuth:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <one of the tokens>``."""

    def __init__(self, tokens: Sequence[SecretStr]) -> None:
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    async def __call__(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        given = presented.strip().encode()
        # Compare against every token, always: the time taken says nothing about which matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        if scheme.lower() != "bearer" or not matched:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
