"""Per-advertiser detector state, and the one Redis transaction that advances it.

State and the alert transitions it causes are written together (WATCH/MULTI/EXEC), so a
snapshot is either fully applied (state saved *and* its transitions on the alerts stream) or
not at all. A re-delivered snapshot then finds its own ``observed_at`` already applied and
emits nothing: that is what makes "at-least-once in, exactly-once alerts out" hold.

Usage::

    store = StateStore(redis, broker, settings.streams)
    transitions = await store.apply(snapshot.advertiser_id, lambda state: evaluate(state, ...))
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import structlog
from faststream.redis import RedisBroker
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import WatchError

from config.settings import StreamSettings
from service import metrics
from service.alerts import AlertTransition

__all__ = ["AccountState", "Evaluation", "OpenEpisode", "StateStore", "newer"]

log = structlog.get_logger(__name__)


class OpenEpisode(BaseModel):
    """An alert that is firing now: what its resolved transition will need."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    starts_at: AwareDatetime


class AccountState(BaseModel):
    """What the detectors remember about one advertiser between snapshots."""

    model_config = ConfigDict(frozen=True)

    advertiser_id: str
    last_observed_at: AwareDatetime
    valid_grant: Decimal
    # The largest valid grant balance seen since the last top-up that ended a low episode.
    peak_grant: Decimal
    open: dict[str, OpenEpisode] = Field(default_factory=dict)


class Evaluation(BaseModel):
    """The detectors' verdict on one snapshot: the next state and what changed."""

    model_config = ConfigDict(frozen=True)

    state: AccountState
    transitions: list[AlertTransition] = Field(default_factory=list)


class StateStore:
    """Reads, evaluates and writes one advertiser's state atomically."""

    def __init__(self, redis: Redis, broker: RedisBroker, streams: StreamSettings) -> None:
        self._redis = redis
        self._broker = broker
        self._streams = streams

    def key(self, advertiser_id: str) -> str:
        return self._streams.key("state", advertiser_id)

    async def load(self, advertiser_id: str) -> AccountState | None:
        raw = await self._redis.get(self.key(advertiser_id))
        return self._decode(advertiser_id, raw)

    async def apply(
        self,
        advertiser_id: str,
        evaluate: Callable[[AccountState | None], Evaluation | None],
    ) -> list[AlertTransition]:
        """Run ``evaluate`` on the current state and commit its result with its transitions.

        ``evaluate`` returns None when the snapshot changes nothing (a duplicate or an older
        one). On a concurrent write by another replica the whole step is retried.
        """
        key = self.key(advertiser_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    state = self._decode(advertiser_id, await pipe.get(key))
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

    def _decode(self, advertiser_id: str, raw: bytes | str | None) -> AccountState | None:
        if raw is None:
            return None
        try:
            return AccountState.model_validate_json(raw)
        except ValidationError:
            # Starting over re-arms the alerts for this account; refusing to go on would
            # silence it for good, which is worse.
            log.error("state.corrupt", advertiser_id=advertiser_id, key=self.key(advertiser_id))
            metrics.STATE_CORRUPT.inc()
            return None


def newer(state: AccountState | None, observed_at: datetime) -> bool:
    """True if a snapshot taken at ``observed_at`` has not been applied to ``state`` yet."""
    return state is None or observed_at > state.last_observed_at
