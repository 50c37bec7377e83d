"""``reconcile.mismatch``: the ledger and the observed grant balance disagree for 24 h.

Usage figures lag delivery by 24-48 h and are revised, so today's and yesterday's figures are
short of what was really spent, and comparing them with the (real-time) balance would call
a mismatch on every account that spends. Only *settled* days are compared: a UTC day whose
``bc_cost`` figure was read ``detect.reconcile_lag_h`` (48 h) or more after it ended. The
ledger's view is what its live credits should still hold at the end of that day after the
grant spend allocated to them (``service.detect.ledger.allocate``) up to it; it is compared with the
grant balance at that midnight (``AccountState.grant_at_midnight``), so both describe one
moment. With ``reconcile_lag_h: 0`` (figures final as read, as the sandbox's are) the newest day's
figure is compared with the balance interpolated at its read time. A difference is reported
once it has persisted ``detect.reconcile_after_h`` (24 h, what TikTok support asks to wait).
Tolerance: the larger of ``reconcile_tolerance`` and ``reconcile_tolerance_percent`` of the
live credits. Accounts without ledger entries are not reconciled.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from config.settings import DetectSettings
from service.detect.burn import seconds
from service.detect.episodes import Episodes, Rule, Value, subject_of, sync, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import read_times, spend_days
from service.detect.ledger import AccountLedger, allocate, ledger_entries
from service.detect.state import AccountState, BalancePoint, SpendDays
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import DailySpendSnapshot

__all__ = ["MISMATCH", "comparable", "evaluate", "grant_at", "settled_day"]

MISMATCH = "reconcile.mismatch"


def settled_day(state: AccountState, lag: timedelta) -> date | None:
    """The newest UTC day whose ``bc_cost`` figure was read at least ``lag`` after the day
    ended, and whose closing grant balance is known: the newest day that can be compared."""
    costs = state.spend.get("bc_cost") or SpendDays()
    settled = [
        day
        for day, figure in costs.items()
        if day in state.grant_at_midnight and figure.observed_at >= _end_of(day) + lag
    ]
    return max(settled, default=None)


def grant_at(history: list[BalancePoint], at: datetime) -> Decimal | None:
    """The grant balance at ``at``, interpolated between the observations around it."""
    before = [p for p in history if p.at <= at]
    after = [p for p in history if p.at >= at]
    if not before or not after:
        return None
    low, high = before[-1], after[0]
    if high.at == low.at:
        return low.grant
    share = seconds(at - low.at) / seconds(high.at - low.at)
    return low.grant + (high.grant - low.grant) * share


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def comparable(
    state: AccountState, lag: timedelta
) -> tuple[datetime, Decimal, dict[date, Decimal]] | None:
    """The newest moment at which both the grant balance and final spend figures are known:
    (that moment, the grant balance then, grant spend per day up to it); None if none is.

    With a lag, the end of the newest settled day and its midnight balance; without one
    (figures final as read), the read time of the newest day's figure and the balance
    interpolated there.
    """
    costs = state.spend.get("bc_cost")
    if not costs:
        return None
    grant_spend = spend_days(state, "grant")
    if lag <= timedelta(0):
        # The newest day's read: older days were final when read, and one read later than
        # today's (a sweep reads today first) would pair today's spend with a later balance.
        at = costs[max(costs)].observed_at
        observed = grant_at(state.history, at)
        return None if observed is None else (at, observed, grant_spend)
    day = settled_day(state, lag)
    if day is None:
        return None
    spent = {d: amount for d, amount in grant_spend.items() if d <= day}
    return _end_of(day), state.grant_at_midnight[day], spent


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    if isinstance(snapshot, DailySpendSnapshot) and snapshot.source != "bc_cost":
        return state, []
    if state.now is None:
        return state, []
    moment = comparable(state, timedelta(hours=settings.reconcile_lag_h))
    if moment is None:
        return state, []  # nothing has settled yet: nothing to call either way
    at, observed, grant_spend = moment
    every = ledger_entries(ledger, state.transactions)
    entries = [e for e in every if e.live(at)]
    if not entries:
        return state, []
    # Expired credits took their share of past spend too: allocate over all of them.
    used = allocate(every, grant_spend, read_times(state))
    expected = sum((max(e.amount - used[e.id], Decimal(0)) for e in entries), Decimal(0))
    difference = observed - expected
    total = sum((e.amount for e in entries), Decimal(0))
    tolerance = max(
        settings.reconcile_tolerance, total * settings.reconcile_tolerance_percent / 100
    )
    mismatched = abs(difference) > tolerance
    since = (state.mismatch_since or at) if mismatched else None
    persisted = since is not None and at - since >= timedelta(hours=settings.reconcile_after_h)
    now = state.now

    subject = subject_of(state)
    values: dict[str, Value] = {
        "ledger_estimate": expected,
        "grant_balance": observed,
        "difference": difference,
        "mismatch_since": since or "",
        "tolerance": tolerance,
    }
    fire = (
        f"The credit ledger of {who(subject)} and its grant balance disagree by "
        f"{difference:.2f} {subject.currency} (ledger {expected:.2f}, balance {observed:.2f}) "
        f"for {settings.reconcile_after_h:g} h or more: a credit may be undeclared, "
        "mis-declared or revised."
    )
    resolve = f"The credit ledger of {who(subject)} matches its grant balance again."
    episodes = Episodes.of(state)
    transitions = sync(
        episodes,
        subject,
        Rule(MISMATCH, "warning"),
        now,
        firing=persisted,
        clear=not mismatched,
        fire=(fire, values),
        resolve=(resolve, values),
    )
    return episodes.updated(state, mismatch_since=since), transitions
