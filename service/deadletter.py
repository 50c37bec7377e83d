"""The dead-letter stream: where input that cannot be processed is set aside, not dropped.

Every entry says where it came from, why it was refused and carries the original payload, so
an operator can inspect it (``XRANGE <prefix>:deadletter - +``) and replay it once fixed.

Usage::

    dead_letters = DeadLetters(redis, settings.streams)
    await dead_letters.put(
        source="snapshots", reason="validation", payload=raw, error=str(exc), entry_id=msg_id
    )
    # a batch of (payload, entry id): the parsed ones, the malformed set aside
    snapshots = await dead_letters.parsed(entries, parse_snapshot, source="snapshots")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from redis.asyncio import Redis

from config.settings import StreamSettings
from service import metrics

__all__ = ["DeadLetters"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Enough to see what was wrong; a hostile multi-megabyte entry is not copied whole.
_MAX_PAYLOAD = 64 * 1024
_MAX_ERROR = 2000


class DeadLetters:
    """Writes refused input to the dead-letter stream, logs it and counts it."""

    def __init__(self, redis: Redis, streams: StreamSettings) -> None:
        self._redis = redis
        self._stream = streams.deadletter
        self._maxlen = streams.maxlen

    async def put(
        self,
        *,
        source: str,
        reason: str,
        payload: bytes,
        error: str,
        entry_id: str = "",
    ) -> None:
        await self._redis.xadd(
            self._stream,
            {
                "source": source,
                "reason": reason,
                "entry_id": entry_id,
                "error": error[:_MAX_ERROR],
                "payload": payload[:_MAX_PAYLOAD],
                "at": datetime.now(UTC).isoformat(),
            },
            maxlen=self._maxlen,
            approximate=True,
        )
        metrics.DEADLETTERED.labels(source=source).inc()
        log.warning(
            "deadletter.put", source=source, reason=reason, entry_id=entry_id, error=error[:300]
        )

    async def parsed(
        self, entries: Sequence[tuple[bytes, str]], parse: Callable[[bytes], T], *, source: str
    ) -> list[T]:
        """A batch of stream entries (payload, entry id) parsed, in stream order; the ones
        ``parse`` refuses (ValueError) are set aside here as malformed."""
        out: list[T] = []
        for payload, entry_id in entries:
            try:
                out.append(parse(payload))
            except ValueError as error:
                await self.put(
                    source=source,
                    reason="malformed",
                    payload=payload,
                    error=str(error),
                    entry_id=entry_id,
                )
        return out
