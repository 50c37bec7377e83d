"""List settings given as one piece of text (an environment variable): ``a,b`` or ``["a", "b"]``.

Usage::

    split_list("7001, 7002")      # ["7001", "7002"]
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["split_list"]


def split_list(value: Any) -> Any:
    """Accept ``a,b`` as well as ``["a", "b"]`` for list settings given as text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value
