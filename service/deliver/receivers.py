"""What a receiver is: it makes one attempt at one delivery and says how it went.

Retrying is not the receiver's business: the sender keeps the schedule in Redis. A receiver
answers ``delivered``, ``retry`` (with the ``Retry-After`` it was given, if any), ``failed``
(retrying cannot help: dead-letter it) or ``gone`` (the endpoint asked never to be called
again: HTTP 410, the receiver is disabled).

Usage::

    class MyReceiver:
        name = "my"
        rate_limit_per_s = None
        async def attempt(self, delivery: Delivery) -> Outcome: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from service.deliver.deliveries import Delivery

__all__ = ["ONE_ALERT_PER_DELIVERY", "ConfiguredReceiver", "Outcome", "Receiver", "ReceiverConfig"]

# Kinds that get one delivery per transition, never a grouped message: a webhook's body is one
# transition, and the incident tools key each event by its alert (their firing must reach them
# before their resolved, which the sender keeps in order per episode).
ONE_ALERT_PER_DELIVERY = frozenset({"webhook", "pagerduty", "opsgenie"})


@dataclass(frozen=True)
class Outcome:
    result: Literal["delivered", "retry", "failed", "gone"]
    detail: str = ""
    status_code: int | None = None
    retry_after_s: float | None = None

    @classmethod
    def delivered(cls, status_code: int | None = None) -> Outcome:
        return cls("delivered", "ok", status_code)

    @classmethod
    def retry(
        cls, detail: str, status_code: int | None = None, retry_after_s: float | None = None
    ) -> Outcome:
        return cls("retry", detail, status_code, retry_after_s)

    @classmethod
    def failed(cls, detail: str, status_code: int | None = None) -> Outcome:
        return cls("failed", detail, status_code)

    @classmethod
    def gone(cls, detail: str, status_code: int | None = None) -> Outcome:
        return cls("gone", detail, status_code)


class Receiver(Protocol):
    """A destination for deliveries."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str:
        """The receiver's ``type``: ``console``, ``webhook``, ``slack``, ``pagerduty``, ..."""
        ...

    @property
    def rate_limit_per_s(self) -> float | None: ...

    async def attempt(self, delivery: Delivery) -> Outcome:
        """One try; never raises for a delivery problem (it returns an Outcome)."""
        ...


class ReceiverConfig(Protocol):
    """What every receiver's settings carry (the receiver types in ``config.notify``)."""

    @property
    def name(self) -> str: ...

    @property
    def rate_limit_per_s(self) -> float | None: ...


C = TypeVar("C", bound=ReceiverConfig)


# Receivers are dataclasses of what they are built with, without a generated repr: their
# settings carry credentials (webhook URLs, API keys), which must not reach a log line.
@dataclass(eq=False, repr=False)
class ConfiguredReceiver(Generic[C]):
    """The part of a receiver that comes straight from its settings: name and rate limit."""

    settings: C

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def rate_limit_per_s(self) -> float | None:
        return self.settings.rate_limit_per_s
