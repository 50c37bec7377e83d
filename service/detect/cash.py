"""``cash.low_after_credit``: the credit is gone and the cash left lasts only a few days.

Once the valid grant balance is 0, every charge goes to cash; on manual payment accounts
delivery stops when the valid cash balance is used up. Fires when the credit is exhausted and
``valid_cash_balance / spend per day`` is under ``detect.cash_runway_days``; resolves when
credit is back, or the runway is ``hysteresis_percent`` over the line (a cash top-up).

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from config.settings import DetectSettings
from service.alerts import AlertTransition
from service.detect.episodes import Episodes, Rule, Value, subject_of, sync, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import total_burn
from service.detect.state import AccountState
from service.ledger import AccountLedger

__all__ = ["CASH_LOW", "evaluate", "runway_days"]

CASH_LOW = "cash.low_after_credit"


def runway_days(cash: Decimal, per_day: Decimal | None) -> Decimal | None:
    """Days the cash lasts at ``per_day``; None if nothing is being spent."""
    if per_day is None or per_day <= 0:
        return None
    return max(cash, Decimal(0)) / per_day


def evaluate(
    state: AccountState,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> tuple[AccountState, list[AlertTransition]]:
    if state.last_observed_at is None or state.now is None:
        return state, []
    # Only an account that had credit can have it run out.
    exhausted = state.peak_grant > 0 and state.valid_grant <= 0
    if not exhausted and CASH_LOW not in state.open:
        return state, []  # nothing to open or close: spare the burn rate
    per_day = total_burn(state, settings, ledger)
    runway = runway_days(state.valid_cash, per_day)
    line = settings.cash_runway_days
    hysteresis = settings.thresholds_for(state.advertiser_id).hysteresis_percent / 100
    firing = exhausted and runway is not None and runway < line
    clear = not exhausted or runway is None or runway >= line * (1 + hysteresis)

    subject = subject_of(state)
    empty_at = (
        state.last_observed_at + timedelta(days=float(runway)) if runway is not None else None
    )
    values: dict[str, Value] = {
        "valid_cash_balance": state.valid_cash,
        "spend_rate_per_day": per_day or Decimal(0),
        "runway_days": runway if runway is not None else "",
        "cash_runs_out_at": empty_at.isoformat() if empty_at else "",
        "runway_line_days": line,
    }
    fire = (
        f"Ad credit for {who(subject)} is used up and the cash balance "
        f"({state.valid_cash:.2f} {subject.currency}) lasts about "
        f"{runway if runway is not None else 0:.1f} days at {per_day or 0:.2f}/day: on manual "
        "payment, delivery stops when it runs out. Add funds or credit."
    )
    resolve = (
        f"Ad credit is back for {who(subject)}."
        if not exhausted
        else f"The cash balance of {who(subject)} covers {line} days or more again."
    )
    episodes = Episodes.of(state)
    transitions = sync(
        episodes,
        subject,
        Rule(CASH_LOW, "critical"),
        state.now,
        firing=firing,
        clear=clear,
        fire=(fire, values),
        resolve=(resolve, values),
    )
    return episodes.updated(state), transitions
