"""``reconcile.mismatch``: the ledger and the observed grant balance disagree for 24 h.

Usage figures lag delivery by hours, so a difference is reported only once it has persisted
``detect.reconcile_after_h`` (24 h; what TikTok support asks to wait). The ledger's view is
what its live credits should still hold after the grant spend allocated to them
(``service.ledger.allocate``), as of the newest ``bc_cost`` figure; it is compared with the
grant balance interpolated at that figure's time, so both describe one moment.
Tolerance: the larger of ``reconcile_tolerance`` and ``reconcile_tolerance_percent`` of the
live credits. Accounts without ledger entries are not reconciled.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from config.settings import DetectSettings
from service.alerts import AlertTransition
from service.detect.burn import seconds
from service.detect.episodes import Episodes, Rule, Value, subject_of, sync, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import read_times, spend_days
from service.detect.state import AccountState, BalancePoint
from service.ledger import AccountLedger, allocate, ledger_entries
from workers.snapshots import DailySpendSnapshot

__all__ = ["MISMATCH", "evaluate", "grant_at"]

MISMATCH = "reconcile.mismatch"


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


def evaluate(
    state: AccountState,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> tuple[AccountState, list[AlertTransition]]:
    if isinstance(snapshot, DailySpendSnapshot) and snapshot.source != "bc_cost":
        return state, []
    costs = state.spend.get("bc_cost")
    if not costs or state.now is None:
        return state, []
    # The newest cost figure, and the grant balance at the moment it was read.
    at = max(figure.observed_at for figure in costs.values())
    every = ledger_entries(ledger, state.transactions)
    entries = [e for e in every if e.live(at)]
    observed = grant_at(state.history, at)
    if not entries or observed is None:
        return state, []
    # Expired credits took their share of past spend too: allocate over all of them.
    used = allocate(every, spend_days(state, "grant"), read_times(state))
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
