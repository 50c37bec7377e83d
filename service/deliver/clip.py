"""Cutting text to a receiver's length limit, visibly: a cut text ends with an ellipsis.

Usage::

    clip("a very long summary", 10)      # "a very lo…"
"""

from __future__ import annotations

__all__ = ["ELLIPSIS", "clip"]

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + ELLIPSIS
