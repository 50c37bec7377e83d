"""Alert episodes as the API and the status page show them, read from the alerts stream.

The alerts stream holds every transition; an episode is shown as its latest transition
(firing while it lasts, resolved once it ended).

Usage::

    episodes = await alert_episodes(redis, settings.streams)     # newest first
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from config.settings import StreamSettings
from service.streams import read_entries
from workers.contract.alerts import AlertTransition, parse_transition
from workers.contract.envelope import payload_of

__all__ = ["AlertEpisode", "alert_episodes"]

# How far back episodes are read from the alerts stream (which is trimmed anyway).
HISTORY_ENTRIES = 10_000


class AlertEpisode(BaseModel):
    """One alert episode as the API shows it: the latest of its transitions."""

    alert_id: str
    kind: str
    status: Literal["firing", "resolved"]
    severity: str
    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str
    summary: str
    values: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    observed_at: datetime

    @classmethod
    def of(cls, transition: AlertTransition) -> AlertEpisode:
        return cls.model_validate(transition.model_dump(exclude={"schema_version"}))


async def alert_episodes(redis: Redis, streams: StreamSettings) -> list[AlertEpisode]:
    """The latest transition of every episode on the alerts streams, newest first."""
    rows = [
        row
        for stream in streams.keyspace.alert_streams()
        for row in await read_entries(redis, stream, count=HISTORY_ENTRIES, newest_first=True)
    ]
    latest: dict[str, AlertEpisode] = {}
    for _, fields in rows:
        try:
            transition = parse_transition(payload_of(fields))
        except ValueError:
            continue  # malformed entries are the notifiers' to dead-letter, not ours
        latest.setdefault(transition.alert_id, AlertEpisode.of(transition))
    return sorted(latest.values(), key=lambda e: e.observed_at, reverse=True)
