"""A pydantic record read back from Redis: ``None`` when the key is absent or unreadable.

The stores keep their records as JSON; one that no longer parses (hand-edited, or written by
a release with another schema) is treated as not there, and each store says what that means
for it.

Usage::

    delivery = read_record(Delivery, await redis.get(key))   # None: absent or unreadable
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["read_record"]

M = TypeVar("M", bound=BaseModel)


def read_record(model: type[M], raw: bytes | str | None) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None
