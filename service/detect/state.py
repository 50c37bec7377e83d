"""Detector state, and the one Redis transaction that advances it.

Two kinds of state: ``AccountState`` per advertiser (balances, spend per day, processed
transactions, open alert episodes, ...) and ``CenterState`` per business center (source
status, the center's own balance). A state and the alert transitions it causes are written
together (WATCH/MULTI/EXEC), so a snapshot is either fully applied (state saved *and* its
transitions on the alerts stream) or not at all. A re-delivered or older snapshot finds its
fact already recorded and emits nothing: "at-least-once in, exactly-once alerts out".

Usage::

    store = StateStore(redis, broker, settings.streams, AccountState, "state")
    transitions = await store.apply(advertiser_id, lambda state: evaluate(state, ...))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Generic, TypeVar

import structlog
from faststream.redis import RedisBroker
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import WatchError

from config.settings import StreamSettings
from service import metrics
from service.alerts import AlertTransition

__all__ = [
    "AccountState",
    "BalancePoint",
    "CenterState",
    "DayFigure",
    "Evaluation",
    "OpenEpisode",
    "Profile",
    "StateStore",
    "TransactionRecord",
]

log = structlog.get_logger(__name__)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class OpenEpisode(_Frozen):
    """An alert that is firing now: what its resolved transition will need."""

    alert_id: str
    starts_at: AwareDatetime


class Profile(_Frozen):
    """Who an advertiser is, for alert bodies: from the newest snapshot that said so."""

    advertiser_name: str = ""
    bc_id: str
    currency: str


class BalancePoint(_Frozen):
    """Balances at one observation: intraday burn is read from their drops."""

    at: AwareDatetime
    grant: Decimal
    cash: Decimal


class DayFigure(_Frozen):
    """One day's spend as last observed; a later observation replaces it, never adds."""

    cash: Decimal
    grant: Decimal
    total: Decimal
    observed_at: AwareDatetime


class TransactionRecord(_Frozen):
    """A processed credit transaction, and the declared credit it was matched to (if any)."""

    transaction_type: str
    amount: Decimal
    create_time: AwareDatetime
    credit_id: str | None = None


class AccountState(_Frozen):
    """What the detectors remember about one advertiser between snapshots."""

    advertiser_id: str
    profile: Profile | None = None
    # The newest balance snapshot's time, and the newest time of any snapshot (API time).
    last_observed_at: AwareDatetime | None = None
    now: AwareDatetime | None = None
    valid_grant: Decimal = Decimal(0)
    grant: Decimal = Decimal(0)
    frozen_grant: Decimal = Decimal(0)
    valid_cash: Decimal = Decimal(0)
    # The largest valid grant balance seen since the last top-up that ended a low episode.
    peak_grant: Decimal = Decimal(0)
    history: list[BalancePoint] = Field(default_factory=list)
    # source ("bc_cost" / "report") -> day -> the newest figure of that day.
    spend: dict[str, dict[date, DayFigure]] = Field(default_factory=dict)
    transactions: dict[str, TransactionRecord] = Field(default_factory=dict)
    open: dict[str, OpenEpisode] = Field(default_factory=dict)
    closed: dict[str, AwareDatetime] = Field(default_factory=dict)
    # Keys of one-shot notifications already sent (a horizon crossed, a tier reached, ...).
    notified: list[str] = Field(default_factory=list)
    # Per live credit, what its expiry is projected to forfeit (as of the newest evaluation).
    credit_unused: dict[str, Decimal] = Field(default_factory=dict)
    mismatch_since: AwareDatetime | None = None


class CenterState(_Frozen):
    """What the detectors remember about one business center."""

    bc_id: str
    # source -> time of its newest status, and the sources whose last poll failed auth.
    status_at: dict[str, AwareDatetime] = Field(default_factory=dict)
    auth_failed: list[str] = Field(default_factory=list)
    balance_at: AwareDatetime | None = None
    currency: str | None = None
    grant: Decimal = Decimal(0)
    valid_grant: Decimal = Decimal(0)
    open: dict[str, OpenEpisode] = Field(default_factory=dict)
    closed: dict[str, AwareDatetime] = Field(default_factory=dict)


S = TypeVar("S", AccountState, CenterState)


@dataclass(frozen=True)
class Evaluation(Generic[S]):
    """The detectors' verdict on one snapshot: the next state and what changed."""

    state: S
    transitions: list[AlertTransition] = field(default_factory=list)


class StateStore(Generic[S]):
    """Reads, evaluates and writes one state atomically; ``namespace`` names its keys."""

    def __init__(
        self,
        redis: Redis,
        broker: RedisBroker,
        streams: StreamSettings,
        model: type[S],
        namespace: str,
    ) -> None:
        self._redis = redis
        self._broker = broker
        self._streams = streams
        self._model: type[S] = model
        self._namespace = namespace

    def key(self, state_id: str) -> str:
        return self._streams.key(self._namespace, state_id)

    async def load(self, state_id: str) -> S | None:
        raw = await self._redis.get(self.key(state_id))
        return self._decode(state_id, raw)

    async def apply(
        self, state_id: str, evaluate: Callable[[S | None], Evaluation[S] | None]
    ) -> list[AlertTransition]:
        """Run ``evaluate`` on the current state and commit its result with its transitions.

        ``evaluate`` returns None when the snapshot changes nothing (a duplicate or an older
        one). On a concurrent write by another replica the whole step is retried.
        """
        key = self.key(state_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    state = self._decode(state_id, await pipe.get(key))
                    result = evaluate(state)
                    if result is None:
                        await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                        return []
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, result.state.model_dump_json())
                    for transition in result.transitions:
                        await self._broker.publish(
                            transition.to_json(),
                            stream=self._streams.alerts,
                            maxlen=self._streams.maxlen,
                            pipeline=pipe,
                        )
                    await pipe.execute()
                except WatchError:
                    metrics.STATE_CONFLICTS.inc()
                    continue
                return result.transitions

    def _decode(self, state_id: str, raw: bytes | str | None) -> S | None:
        if raw is None:
            return None
        try:
            return self._model.model_validate_json(raw)
        except ValidationError:
            # Starting over re-arms the alerts for this account; refusing to go on would
            # silence it for good, which is worse.
            log.error("state.corrupt", state_id=state_id, key=self.key(state_id))
            metrics.STATE_CORRUPT.inc()
            return None
