"""What a receiver is: something that takes one alert transition and delivers it, or says why not.

Usage::

    class MyReceiver:
        name = "my"
        def wants(self, transition: AlertTransition) -> bool: ...
        async def send(self, transition: AlertTransition, delivery_id: str) -> None: ...
"""

from __future__ import annotations

from typing import Protocol

from service.alerts import AlertTransition

__all__ = ["DeliveryFailed", "Receiver"]


class DeliveryFailed(Exception):
    """A delivery that did not succeed after every attempt it was allowed."""

    def __init__(self, receiver: str, reason: str, *, attempts: int) -> None:
        super().__init__(f"{receiver}: {reason} (after {attempts} attempt(s))")
        self.receiver = receiver
        self.reason = reason
        self.attempts = attempts


class Receiver(Protocol):
    """A destination for alert transitions."""

    @property
    def name(self) -> str: ...

    def wants(self, transition: AlertTransition) -> bool: ...

    async def send(self, transition: AlertTransition, delivery_id: str) -> None:
        """Deliver once (retrying as the receiver sees fit), or raise DeliveryFailed."""
        ...
