"""The errors of a TikTok Business API call, and the API codes that decide which one.

Only the envelope's ``code`` decides (``message`` is shown, never compared): throttling and
system codes are retried by the transport (``workers.tiktok.transport``) and raised as
``RateLimited`` / ``TransientError`` when their retries run out; auth, permission, bad request
and any other code are raised at once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = [
    "AUTH_CODES",
    "BAD_REQUEST_CODE",
    "PERMISSION_CODE",
    "SERVER_ERROR_CODES",
    "THROTTLE_CODES",
    "ApiError",
    "AuthError",
    "BadRequest",
    "MalformedReply",
    "PermissionDenied",
    "RateLimited",
    "TikTokError",
    "TransientError",
    "error_for",
    "json_kind",
]

THROTTLE_CODES = frozenset({40100, 40133, 40132, 40016, 61000})
SERVER_ERROR_CODES = frozenset({50000, 50002, 60001})
# Wrong, revoked, missing or expired token; invalid core user; a refresh token misused.
AUTH_CODES = frozenset({40105, 40104, 40102, 40106, 40107})
PERMISSION_CODE = 40001
BAD_REQUEST_CODE = 40002


class TikTokError(Exception):
    """Any failure of a TikTok API call; ``code`` is the API code when the reply had one."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        text = f"{endpoint}: {message}"
        if code is not None:
            text += f" [code {code}]"
        if request_id is not None:
            text += f" [request_id {request_id}]"
        super().__init__(text)
        self.code = code
        self.endpoint = endpoint
        self.request_id = request_id


class AuthError(TikTokError):
    """40105 / 40104 / 40102 / 40106 / 40107: the access token is wrong, revoked, missing or
    expired, its core user invalid, or a refresh token was used. Not retried; alert ops."""


class PermissionDenied(TikTokError):
    """40001: the token has no permission for this resource. Not retried."""


class BadRequest(TikTokError):
    """40002: a bad parameter, or a resource that is not accessible. Not retried."""


class ApiError(TikTokError):
    """Any other non-zero API code (or an unexpected HTTP status). Not retried."""


class MalformedReply(TikTokError):
    """The reply is not a JSON object envelope with an integer ``code`` and object ``data``."""


class TransientError(TikTokError):
    """A retryable failure (5xx, timeout, transport, system code) outlived every retry."""


class RateLimited(TransientError):
    """Throttling (40100, 40133, 40132, 40016, 61000, HTTP 429) outlived every retry; only
    with pausing off (``tiktok.suspension_s: 0``): else a persistent throttle pauses."""


def error_for(code: int) -> type[TikTokError]:
    """The error a code that is not retried raises (neither throttling nor a system code)."""
    if code in AUTH_CODES:
        return AuthError
    if code == PERMISSION_CODE:
        return PermissionDenied
    if code == BAD_REQUEST_CODE:
        return BadRequest
    return ApiError


def json_kind(value: Any) -> str:
    """A JSON value's kind for error texts (never the value itself)."""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, int | float | Decimal):
        return "a number"
    return type(value).__name__
