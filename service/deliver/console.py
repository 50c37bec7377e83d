"""The console receiver: one readable line per alert transition, on standard output.

Usage::

    await ConsoleReceiver(settings).attempt(delivery)
    # 2026-11-22T17:40:00+00:00  FIRING    critical  credit.exhausted  Draining Shop (71..): ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from config.notify import ConsoleReceiverSettings
from service.deliver.deliveries import Delivery
from service.deliver.receivers import ConfiguredReceiver, Outcome
from workers.contract.alerts import AlertTransition

__all__ = ["ConsoleReceiver", "format_line"]


def format_line(transition: AlertTransition, *, repeat: bool = False) -> str:
    status = "REPEAT" if repeat else transition.status.upper()
    return (
        f"{transition.observed_at.isoformat(timespec='seconds')}  "
        f"{status:<8}  {transition.severity:<8}  {transition.kind:<16}  "
        f"{transition.summary}"
    )


@dataclass(eq=False, repr=False)
class ConsoleReceiver(ConfiguredReceiver[ConsoleReceiverSettings]):
    """Prints every transition; it never fails, so it never retries."""

    kind = "console"

    stream: TextIO | None = None

    async def attempt(self, delivery: Delivery) -> Outcome:
        stream = self.stream or sys.stdout
        for transition in delivery.transitions:
            print(format_line(transition, repeat=delivery.repeat), file=stream, flush=True)
        return Outcome.delivered()
