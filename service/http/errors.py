"""Error answers of the HTTP app: 422 shaped like FastAPI's own, 503 when it is saturated.

Checks that need the settings or Redis (a label that is not declared, an unsafe URL, a
duplicate id) happen in the route, after the body has parsed; they answer the same way a
schema error does, naming the field, so clients handle one shape.

Schema errors go through ``validation_failed``: FastAPI's own handler echoes the input, which
JSON cannot encode when it is ``NaN``, ``Infinity``, ``1e400`` or a lone surrogate (a 500);
this one shows such numbers as text, replaces the surrogates and cuts deep or long input
short. ``unavailable`` is the one 503 answer, with ``Retry-After``, for a full house or Redis
out of reach.

Usage::

    raise invalid(("body", "url"), "must be https")
    return found(await store.get(delivery_id), "delivery")    # the value, or a 404
    app.add_exception_handler(RequestValidationError, validation_failed)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from service import metrics

__all__ = [
    "RETRY_AFTER_S",
    "conflict",
    "found",
    "invalid",
    "not_found",
    "redis_unavailable",
    "unavailable",
    "validation_failed",
]

RETRY_AFTER_S = 1
# How much of a rejected input an error echoes back.
_SHOWN_DEPTH = 4
_SHOWN_ITEMS = 20
_SHOWN_CHARS = 200

T = TypeVar("T")


def invalid(loc: Sequence[str | int], message: str) -> HTTPException:
    detail = [{"type": "value_error", "loc": list(loc), "msg": message}]
    return HTTPException(status_code=422, detail=detail)


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"no such {what}")


def found(value: T | None, what: str) -> T:
    """``value``, or the 404 for ``what`` when a lookup found nothing."""
    if value is None:
        raise not_found(what)
    return value


def conflict(message: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_409_CONFLICT, detail=message)


def unavailable(reason: str) -> JSONResponse:
    """503, come back in a second."""
    return JSONResponse(
        {"detail": reason},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``detail``: the errors, each with ``loc`` naming the field), whatever
    the input was."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {**error, "input": _shown(error["input"], 0)} if "input" in error else error
        for error in exc.errors()
    ]
    return JSONResponse({"detail": _encodable(jsonable_encoder(errors))}, status_code=422)


async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis out of reach, or the app's pool busy for longer than ``api.redis_wait_s``."""
    assert isinstance(exc, RedisError)
    metrics.HTTP_REFUSED.labels(reason="redis").inc()
    return unavailable(f"redis: {type(exc).__name__}")


def _shown(value: Any, depth: int) -> Any:
    """``value`` cut to a few levels, items and characters (``_encodable`` does the rest)."""
    if isinstance(value, dict | list | tuple) and depth >= _SHOWN_DEPTH:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())[:_SHOWN_ITEMS]
        return {str(k)[:_SHOWN_CHARS]: _shown(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [_shown(v, depth + 1) for v in value[:_SHOWN_ITEMS]]
    if isinstance(value, str | bytes):
        return value[:_SHOWN_CHARS]
    return value


def _encodable(value: Any) -> Any:
    """JSON in UTF-8: non-finite floats as text, lone surrogates (``"\\ud800"``) replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value
