"""422 answers raised by route code, shaped like FastAPI's own validation errors.

Checks that need the settings or Redis (a label that is not declared, an unsafe URL, a
duplicate id) happen in the route, after the body has parsed; they answer the same way a
schema error does, naming the field, so clients handle one shape.

Usage::

    raise invalid(("body", "url"), "must be https")
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException, status

__all__ = ["conflict", "invalid", "not_found"]


def invalid(loc: Sequence[str | int], message: str) -> HTTPException:
    detail = [{"type": "value_error", "loc": list(loc), "msg": message}]
    return HTTPException(status_code=422, detail=detail)


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"no such {what}")


def conflict(message: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_409_CONFLICT, detail=message)
