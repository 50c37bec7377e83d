"""Request priorities: which source's request gets the developer app's next grant.

Every request of a poll takes a grant from its app's budget (``workers.api_budget``); when
several wait, the budget grants the one of lowest rank first (arrival order among equals).
A poll says who it is for with ``claiming(claimant)``: the claimant's ``rank()`` is read each
time the budget chooses, so a sweep's rank can change while it waits, and ``granted()``
counts its grants. The order, first to last:

1. ``BALANCES``: a balance sweep that is due (it must start now to end within ``PACE`` of
   the interval after the last one), and the keyword polls of at-risk accounts: they detect
   exhaustion and freezes;
2. ``TRANSACTIONS``, 3. ``BC_BALANCE``, 4. ``COST``, 5. ``REPORTS``: a sweep of these sources
   while it is behind its pace (the share of its requests done is below the share of its
   interval gone, aiming to finish at ``PACE`` of it);
6. ``SPARE``: a balance sweep run early, because budget was left over;
7. ``AHEAD``: a sweep of the other sources that is ahead of its pace.

So a long report sweep can never hold up balances (it yields between requests), balances
are swept back to back when budget is left over, and the slower sources still finish each
sweep within their interval, filling what balances leave.

Usage::

    sweep = PacedSweep(Priority.REPORTS, interval_s=3600, expected=2040)
    with claiming(sweep):
        await poller.poll("7001")          # every request waits at the sweep's rank
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum
from typing import Protocol

__all__ = [
    "PACE",
    "PROBE",
    "BalanceSweep",
    "Claimant",
    "Fixed",
    "PacedSweep",
    "Priority",
    "claiming",
    "current",
]

# Paced sweeps aim to be done at this share of their interval, so that jitter and a busy
# minute still leave them inside it.
PACE = 0.8
# A sweep of unknown size waits for spare budget this share of its span before it insists.
PROBE = 0.05


class Priority(IntEnum):
    BALANCES = 0
    TRANSACTIONS = 1
    BC_BALANCE = 2
    COST = 3
    REPORTS = 4
    SPARE = 5
    AHEAD = 6


class Claimant(Protocol):
    """Who a request is for: its rank now, and a note of each grant it got."""

    def rank(self) -> int: ...

    def granted(self) -> None: ...


class Fixed:
    """A claimant of one unchanging rank (a risk poll, a discovery, a one-off call)."""

    def __init__(self, priority: Priority) -> None:
        self.priority = priority
        self.grants = 0

    def rank(self) -> int:
        return int(self.priority)

    def granted(self) -> None:
        self.grants += 1


class BalanceSweep:
    """A balance sweep: ``BALANCES`` once it must start to end within ``PACE`` of the interval
    after the last one (its end plus that span, less what the last sweep took; half the span
    when that is unknown), or when there was none; ``SPARE`` before that, when it is run early.

    ``PACE``, as for the other sweeps: aimed at the whole interval, a sweep that waited for a
    grant or met a slower reply than the last one would end just past it.
    """

    def __init__(
        self,
        *,
        interval_s: float,
        last_done: float | None,
        took_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        span = interval_s * PACE
        lead = span / 2 if took_s is None else min(max(took_s, 0.0), span)
        self._due_at = None if last_done is None else last_done + span - lead
        self._clock = clock
        self.grants = 0

    def rank(self) -> int:
        if self._due_at is None or self._clock() >= self._due_at:
            return int(Priority.BALANCES)
        return int(Priority.SPARE)

    def granted(self) -> None:
        self.grants += 1


class PacedSweep:
    """A sweep of a slower source: its own rank while behind its pace, ``AHEAD`` while ahead.

    ``expected`` is how many requests the sweep will need (its previous sweep's count), or
    what the poller learns on the way (``expect``: the pace then runs from that moment over
    what is left of the span). While the size is unknown the sweep takes spare budget only,
    for the first ``PROBE`` of its span, then its rank until it knows.
    """

    def __init__(
        self,
        priority: Priority,
        *,
        interval_s: float,
        expected: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.priority = priority
        self.expected = expected
        self.grants = 0
        self._clock = clock
        self._started = clock()
        self._end = self._started + interval_s * PACE
        # The pace runs from (_base_at, _base) to (_end, expected).
        self._base_at, self._base = self._started, 0

    def expect(self, requests: int) -> None:
        """The sweep needs ``requests`` in all (those it made included)."""
        self.expected = max(requests, self.grants + 1)
        self._base_at, self._base = min(self._clock(), self._end), self.grants

    def rank(self) -> int:
        now = self._clock()
        if self.expected is None or self.expected <= 0:
            probing = now - self._started < PROBE * (self._end - self._started)
            return int(Priority.AHEAD if probing else self.priority)
        span = self._end - self._base_at
        gone = 1.0 if span <= 0 else (now - self._base_at) / span
        done = (self.grants - self._base) / max(1, self.expected - self._base)
        return int(self.priority if done <= gone else Priority.AHEAD)

    def granted(self) -> None:
        self.grants += 1


# Requests outside any poll (discovery, the CLI, tests) rank with balances: first come.
_DEFAULT = Fixed(Priority.BALANCES)
_claimant: ContextVar[Claimant] = ContextVar("request_claimant", default=_DEFAULT)


def current() -> Claimant:
    """The claimant of the current task's requests."""
    return _claimant.get()


@contextmanager
def claiming(claimant: Claimant) -> Iterator[Claimant]:
    """Requests made inside the block (in this task) are ``claimant``'s."""
    token = _claimant.set(claimant)
    try:
        yield claimant
    finally:
        _claimant.reset(token)
