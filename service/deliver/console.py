"""The console receiver: one readable line per alert transition, on standard output.

Usage::

    ConsoleReceiver().send(transition, delivery_id)
    # 2026-11-22T17:40:00+00:00  FIRING    critical  credit.exhausted  Draining Shop (71..): ...
"""

from __future__ import annotations

import sys
from typing import TextIO

from service.alerts import AlertTransition

__all__ = ["ConsoleReceiver", "format_line"]


def format_line(transition: AlertTransition) -> str:
    return (
        f"{transition.observed_at.isoformat(timespec='seconds')}  "
        f"{transition.status.upper():<8}  {transition.severity:<8}  {transition.kind:<16}  "
        f"{transition.summary}"
    )


class ConsoleReceiver:
    """Prints every transition; it never fails, so it never retries."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def wants(self, transition: AlertTransition) -> bool:
        return True

    async def send(self, transition: AlertTransition, delivery_id: str) -> None:
        stream = self._stream or sys.stdout
        print(format_line(transition), file=stream, flush=True)
