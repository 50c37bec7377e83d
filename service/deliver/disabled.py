"""Receivers switched off because their endpoint answered 410 Gone.

The record lives in Redis (so every replica, and a restarted service, skips the receiver) and
keeps the ``ops.receiver_disabled`` transition that announced it, so that enabling the receiver
again can resolve that alert.

Usage::

    first = await disabled.disable("ops", reason="HTTP 410", alert=transition)
    if await disabled.is_disabled("ops"): skip it
    alert = await disabled.enable("ops")      # the firing transition, or None
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis

from config.settings import StreamSettings
from workers.contract.alerts import AlertTransition, episode_id

__all__ = ["DisabledReceivers", "receiver_disabled_alert"]

OPS_KIND = "ops.receiver_disabled"


def receiver_disabled_alert(
    receiver: str,
    reason: str,
    when: datetime,
    *,
    resolved_at: datetime | None = None,
    starts_at: datetime | None = None,
) -> AlertTransition:
    """The ops alert that says a receiver no longer gets anything (critical)."""
    start = starts_at or when
    return AlertTransition(
        alert_id=_alert_id(receiver, start),
        kind=OPS_KIND,
        status="resolved" if resolved_at else "firing",
        severity="critical",
        advertiser_id="",
        advertiser_name="",
        bc_id="",
        currency="XXX",  # ISO 4217 for "no currency": this alert is about no account
        summary=(
            f"Receiver {receiver} was enabled again."
            if resolved_at
            else f"Receiver {receiver} is disabled: its endpoint answered {reason}. "
            f"Nothing is sent to it until `creditwatch receivers enable {receiver}`."
        ),
        values={},
        starts_at=start,
        ends_at=resolved_at,
        observed_at=resolved_at or when,
    )


def _alert_id(receiver: str, start: datetime) -> str:
    return episode_id(OPS_KIND, f"receiver:{receiver}", start)


class DisabledReceivers:
    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._streams = streams

    def key(self, receiver: str) -> str:
        return self._streams.keyspace.receiver_disabled(receiver)

    async def disable(self, receiver: str, *, alert: AlertTransition) -> bool:
        """True for the first caller only: that one announces it."""
        return bool(await self._redis.set(self.key(receiver), alert.to_json(), nx=True))

    async def is_disabled(self, receiver: str) -> bool:
        return bool(await self._redis.exists(self.key(receiver)))

    async def enable(self, receiver: str) -> AlertTransition | None:
        """Switch it back on; returns the alert that announced it was off, if it was."""
        raw = await self._redis.getdel(self.key(receiver))
        return AlertTransition.model_validate_json(raw) if raw else None
