"""Detector state, and the one Redis transaction that advances it.

Two kinds of state: ``AccountState`` per advertiser (balances, spend per day, processed
transactions, open alert episodes, ...) and ``CenterState`` per business center (source
status, the center's own balance). States and the alert transitions they cause are written
together (WATCH/MULTI/EXEC), a whole batch of states at a time, so a snapshot is either fully
applied (state saved *and* its transitions on the alerts stream) or not at all. A
re-delivered or older snapshot finds its fact already recorded and emits nothing:
"at-least-once in, exactly-once alerts out".

Usage::

    store = StateStore(redis, settings.streams, AccountState, "state")
    transitions = await store.apply(advertiser_id, lambda state: evaluate(state, ...))
    transitions = await store.apply_many({advertiser_id: step, ...})   # one transaction
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Generic, NamedTuple, TypeVar

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import WatchError

from config.settings import StreamSettings
from service import metrics
from service.alerts import AlertTransition
from workers.publish import stream_entry

__all__ = [
    "AccountState",
    "BalancePoint",
    "CenterState",
    "DayFigure",
    "Evaluation",
    "OpenEpisode",
    "Profile",
    "StateStore",
    "Step",
    "TransactionRecord",
    "fold",
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


# The two records a state holds many of are named tuples, stored as JSON arrays: a third
# smaller in Redis than objects with field names, and quicker to decode on every snapshot.


class BalancePoint(NamedTuple):
    """Balances at one observation: intraday burn is read from their drops."""

    at: AwareDatetime
    grant: Decimal
    cash: Decimal


class DayFigure(NamedTuple):
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

# Tries of a whole batch before it is split up (see ``StateStore.apply_many``).
_BATCH_ATTEMPTS = 2


@dataclass(frozen=True)
class Evaluation(Generic[S]):
    """The detectors' verdict on one snapshot: the next state and what changed."""

    state: S
    transitions: list[AlertTransition] = field(default_factory=list)


# One state's step: the current state (None if there is none yet) -> its evaluation.
Step = Callable[[S | None], Evaluation[S] | None]


def fold(state: S | None, steps: Iterable[Step[S]]) -> Evaluation[S] | None:
    """Several steps in order, as one: the last state and every transition on the way;
    None if none of them changed anything."""
    current, changed = state, False
    transitions: list[AlertTransition] = []
    for step in steps:
        result = step(current)
        if result is None:
            continue
        current, changed = result.state, True
        transitions += result.transitions
    if not changed or current is None:
        return None
    return Evaluation(current, transitions)


class StateStore(Generic[S]):
    """Reads, evaluates and writes one state atomically; ``namespace`` names its keys."""

    def __init__(
        self,
        redis: Redis,
        streams: StreamSettings,
        model: type[S],
        namespace: str,
    ) -> None:
        self._redis = redis
        self._streams = streams
        self._model: type[S] = model
        self._namespace = namespace

    def key(self, state_id: str) -> str:
        return self._streams.key(self._namespace, state_id)

    async def load(self, state_id: str) -> S | None:
        raw = await self._redis.get(self.key(state_id))
        return self._decode(state_id, raw)

    async def apply(self, state_id: str, evaluate: Step[S]) -> list[AlertTransition]:
        """Run ``evaluate`` on the current state and commit its result with its transitions.

        ``evaluate`` returns None when the snapshot changes nothing (a duplicate or an older
        one). On a concurrent write by another replica the whole step is retried.
        """
        return await self.apply_many({state_id: evaluate})

    async def apply_many(self, steps: Mapping[str, Step[S]]) -> list[AlertTransition]:
        """``apply`` for many states at once: one read, one transaction, one round of writes.

        All keys are watched together, so a batch commits whole or not at all. A batch that
        keeps colliding with another replica is split into single states, which then retry
        on their own: one hot account cannot hold up the rest.
        """
        if not steps:
            return []
        attempts = 0
        while len(steps) == 1 or attempts < _BATCH_ATTEMPTS:
            try:
                return await self._commit(steps)
            except WatchError:
                metrics.STATE_CONFLICTS.inc()
                attempts += 1
        transitions: list[AlertTransition] = []
        for state_id, step in steps.items():
            transitions += await self.apply_many({state_id: step})
        return transitions

    async def _commit(self, steps: Mapping[str, Step[S]]) -> list[AlertTransition]:
        ids = list(steps)
        keys = [self.key(state_id) for state_id in ids]
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*keys)
            raws = await pipe.mget(keys)
            results: list[tuple[str, Evaluation[S]]] = []
            for state_id, key, raw in zip(ids, keys, raws, strict=True):
                result = steps[state_id](self._decode(state_id, raw))
                if result is not None:
                    results.append((key, result))
            if not results:
                await pipe.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                return []
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.mset({key: result.state.model_dump_json() for key, result in results})
            transitions = [t for _, result in results for t in result.transitions]
            for transition in transitions:
                entry = await stream_entry(transition.to_json(), transition.transition_id)
                pipe.xadd(
                    self._streams.alerts, entry, maxlen=self._streams.maxlen, approximate=True
                )
            await pipe.execute()
            return transitions

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
