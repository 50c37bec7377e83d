"""Spend days that can no longer change, rolled into spans: what a state keeps of old spend.

A state keeps each day's figure while it may still be revised or the burn rate reads it (the
spend window, ``window``). Older days are only ever *summed*: over a ladder window, over a
discount's validity, and day by day into the credits live on each day (``ledger.allocate``,
which takes each day's spend in the same order, so a run of days on which the same credits
are live takes the same amounts as their sum taken at once). So consecutive old days are
merged into one ``SpanTotal``, keyed by its first day, as long as no *cut* day lies in the
run: a day on which a credit starts or ends, a ladder window opens or closes, or a credit
transaction happened (an undeclared credit starts there). A cut day stays a span of its own,
so every span is wholly inside or wholly outside each of those periods, and every reader
that looks a span up by its first day gets what it got from the days one by one.

The source no rule reads while the other has figures (``report`` beside ``bc_cost``) keeps
no day as it is: its figures go straight into spans, and a later revision of a day is
ignored, which no rule can see (none reads it) and which never adds.

A day is never counted twice: a figure for a day already inside a span is ignored (spend
that old is final; revisions come within the window). A credit declared later whose dates
fall inside an existing span sees that span as one day, its first.

Usage::

    cuts = cut_days(ledger, state.transactions)
    spans = roll(spans, day, figure, cuts)    # None: that day is already in a span
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache

from config.settings import DetectSettings
from service.detect.ledger import AccountLedger
from service.detect.state import DayFigure, SpanTotal, TransactionRecord

__all__ = ["MIN_WINDOW", "cut_days", "drop_before", "roll", "window"]

# The status page's burn-down reads 14 days back from its oldest balance point (at most a day
# old); the reconciliation's midnights and the cost revisions are inside that too.
MIN_WINDOW = timedelta(days=15)
_DAY = timedelta(days=1)
_INSTANT = timedelta(microseconds=1)


def window(settings: DetectSettings) -> timedelta:
    """How far back day figures are kept as they are: the burn rate's complete days, the
    reconciliation lag (figures still revised) and a day either side."""
    return _window(settings.burn_days, settings.reconcile_lag_h)


@cache
def _window(burn_days: int, reconcile_lag_h: float) -> timedelta:
    # Asked for every snapshot, with the same two settings.
    return max(
        MIN_WINDOW, timedelta(days=burn_days + 2), timedelta(hours=reconcile_lag_h) + 2 * _DAY
    )


def _days(at: datetime) -> set[date]:
    # Rules read some dates as given (``.date()``) and some in UTC: both are cuts.
    return {at.date(), at.astimezone(UTC).date()}


def cut_days(
    ledger: AccountLedger, transactions: Mapping[str, TransactionRecord]
) -> frozenset[date]:
    """The days on which what is live or counted changes: no span runs across one."""
    days: set[date] = set()
    for credit in ledger.credits:
        days |= (
            _days(credit.valid_from) | _days(credit.valid_to) | _days(credit.valid_to - _INSTANT)
        )
    for program in ledger.programs:
        days |= _days(program.window_start) | _days(program.window_end)
        days |= _days(program.window_end - _INSTANT)
    for record in transactions.values():
        days |= _days(record.create_time)
    return frozenset(days)


def roll(
    spans: Mapping[date, SpanTotal], day: date, figure: DayFigure, cuts: frozenset[date]
) -> dict[date, SpanTotal] | None:
    """``spans`` with ``day``'s figure in them, merged with its neighbours where no cut day
    lies between; None if ``day`` is already inside a span (it has been counted)."""
    if any(first <= day <= span.last for first, span in spans.items()):
        return None
    added = {**spans, day: SpanTotal(day, figure.cash, figure.grant, figure.total)}
    merged: dict[date, SpanTotal] = {}
    current: date | None = None
    for first in sorted(added):
        span = added[first]
        if current is not None:
            previous = merged[current]
            adjacent = first == previous.last + _DAY
            if adjacent and not any(current <= cut <= span.last for cut in cuts):
                merged[current] = SpanTotal(
                    span.last,
                    previous.cash + span.cash,
                    previous.grant + span.grant,
                    previous.total + span.total,
                )
                continue
        merged[first] = span
        current = first
    return merged


def drop_before(spans: Mapping[date, SpanTotal], oldest: date) -> dict[date, SpanTotal]:
    """The spans that end on or after ``oldest`` (retention)."""
    return {first: span for first, span in spans.items() if span.last >= oldest}
