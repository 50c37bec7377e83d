"""Silences a test adds straight through the store, starting at the test's ``now``."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.deliver.silences import Silence, Silences


async def silence_from(
    silences: Silences,
    matchers: dict[str, str],
    *,
    now: datetime,
    lasting: timedelta = timedelta(hours=1),
    comment: str = "c",
    author: str = "a",
) -> Silence:
    """A silence of ``matchers`` from ``now`` for ``lasting``."""
    return await silences.add(
        matchers,
        starts_at=now,
        ends_at=now + lasting,
        comment=comment,
        author=author,
        now=now,
    )
