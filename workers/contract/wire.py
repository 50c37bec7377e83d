"""JSON on the wire with money kept exact: numbers parse to Decimal, Decimal dumps as a number.

The TikTok API sends money as JSON numbers ("money values are numbers with 2 decimals");
reading them as float would already lose cents, so every reply is parsed here.

Usage::

    data = loads(b'{"grant_balance": 12.30}')   # {'grant_balance': Decimal('12.30')}
    dumps({"amount": Decimal("1.10")})          # b'{"amount":1.10}'
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import orjson

__all__ = ["CENT", "dumps", "loads", "money_text"]

CENT = Decimal("0.01")
# msgspec hands each non-integer number's own digits to the hook: exact, and its C parser is
# several times the standard library's on every snapshot the detectors read.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # A Fragment is written as-is: the exact decimal digits, as a JSON number.
        return orjson.Fragment(str(value) if value.is_finite() else "null")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Serialise to JSON bytes; Decimal becomes a JSON number with its exact digits."""
    return orjson.dumps(value, default=_default)


def loads(text: bytes | str) -> Any:
    """Parse JSON; every non-integer number becomes a Decimal (integers stay int).

    Raises ValueError on anything that is not strict JSON (``NaN`` included), including
    absurdly deep nesting.
    """
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def money_text(amount: Decimal) -> str:
    """An amount as the contract's text form: two decimals, e.g. ``"12.30"``."""
    return str(amount.quantize(CENT))
