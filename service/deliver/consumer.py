"""The notifiers' stream handler: deliver one alert transition to every receiver that wants it.

Each (transition, receiver) pair is one delivery with a stable id. A delivery marked sent in
Redis is never sent again, so a re-delivered stream entry (after a crash, or a reclaim by
another replica) only retries what had not gone out yet.

Usage::

    notifier = Notifier(redis, [ConsoleReceiver(), webhook], dead_letters, settings.streams)
    await notifier.handle(payload, entry_id)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from config.settings import StreamSettings
from service import metrics
from service.alerts import AlertTransition, parse_transition
from service.deadletter import DeadLetters
from service.deliver.receivers import DeliveryFailed, Receiver

__all__ = ["Notifier"]

log = structlog.get_logger(__name__)

# How long a "sent" mark is kept: far longer than any entry stays pending on the stream.
_SENT_TTL_S = 30 * 24 * 3600


class Notifier:
    """Fans one transition out to its receivers, each at most once."""

    def __init__(
        self,
        redis: Redis,
        receivers: Sequence[Receiver],
        dead_letters: DeadLetters,
        streams: StreamSettings,
    ) -> None:
        self._redis = redis
        self._receivers = list(receivers)
        self._dead_letters = dead_letters
        self._streams = streams

    async def handle(self, payload: bytes, entry_id: str) -> None:
        try:
            transition = parse_transition(payload)
        except ValueError as error:
            await self._dead_letters.put(
                source="alerts",
                reason="malformed",
                payload=payload,
                error=str(error),
                entry_id=entry_id,
            )
            return
        wanted = [r for r in self._receivers if r.wants(transition)]
        await asyncio.gather(*(self._deliver(r, transition) for r in wanted))

    async def _deliver(self, receiver: Receiver, transition: AlertTransition) -> None:
        delivery_id = f"{transition.transition_id}:{receiver.name}"
        sent_key = self._streams.key("sent", delivery_id)
        if await self._redis.exists(sent_key):
            metrics.DELIVERIES.labels(receiver=receiver.name, outcome="already_sent").inc()
            return
        try:
            await receiver.send(transition, delivery_id)
        except DeliveryFailed as failure:
            metrics.DELIVERIES.labels(receiver=receiver.name, outcome="failed").inc()
            await self._dead_letters.put(
                source="deliveries",
                reason="undeliverable",
                payload=transition.to_json(),
                error=str(failure),
                entry_id=delivery_id,
            )
            return
        await self._redis.set(sent_key, "1", ex=_SENT_TTL_S)
        metrics.DELIVERIES.labels(receiver=receiver.name, outcome="delivered").inc()
        log.debug("delivery.sent", receiver=receiver.name, delivery_id=delivery_id)
