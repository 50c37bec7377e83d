"""Redis replies as text, in one place.

The clients are built without ``decode_responses``: stream entries and states are read as
bytes (FastStream's message format; msgspec and pydantic take bytes as they are). Keys,
fields, ids and scores therefore come back as bytes too (or, from a Lua script, as numbers),
and whoever needs them as text calls ``decoded``: in ``config/`` because both roles do.

Usage::

    ids = [decoded(i) for i in await redis.zrange(key, 0, -1)]
"""

from __future__ import annotations

__all__ = ["decoded"]


def decoded(value: object) -> str:
    """A reply as text: bytes decoded as UTF-8, anything else (str, a script's number) as
    ``str`` gives it."""
    return value.decode() if isinstance(value, bytes) else str(value)
