"""The sandbox's API reply: ``{code, message, request_id, data}`` (HTTP 200 even for errors),
and the codes it carries.

Usage::

    raise ApiError(40002, "bc_id: required")       # answered as an envelope with that code
    envelope(0, "OK", {"list": []})
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from workers.contract import wire

__all__ = [
    "BAD_PARAMETER",
    "BAD_TOKEN",
    "NO_PERMISSION",
    "OK",
    "RATE_LIMITED",
    "SYSTEM_ERROR",
    "ApiError",
    "envelope",
]

# The codes the sandbox answers with (the reference's meanings).
OK, NO_PERMISSION, BAD_PARAMETER = 0, 40001, 40002
RATE_LIMITED, BAD_TOKEN, SYSTEM_ERROR = 40100, 40105, 50000


class ApiError(Exception):
    """An API-level failure, answered as HTTP 200 with ``code != 0``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope(code: int, message: str, data: dict[str, Any]) -> Response:
    body = {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data}
    return Response(wire.dumps(body), media_type="application/json")
