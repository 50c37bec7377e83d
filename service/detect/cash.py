"""``cash.low_after_credit``: the credit is gone and the cash left lasts only a few days.

Once the valid grant balance is 0, every charge goes to cash; on manual payment accounts
delivery stops when the valid cash balance is used up. Fires when the credit is exhausted and
``valid_cash_balance / spend per day`` is under ``detect.cash_runway_days``; resolves when
credit is back, or the runway is ``hysteresis_percent`` over the line (a cash top-up).

An account that pays from a SHARED Payment Portfolio is left out: its cash figures are the
portfolio's, drawn on by every account in it, so dividing them by this account's spend would
promise a runway that the others are also using up. It never fires there, and an episode open
when the account moved into a shared portfolio resolves.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from config.settings import DetectSettings
from service.detect.episodes import Messages, Rule, Subject, Value, flag_text, sync_state, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import total_burn
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["CASH_LOW", "evaluate", "runway_days"]

CASH_LOW = "cash.low_after_credit"


def runway_days(cash: Decimal, per_day: Decimal | None) -> Decimal | None:
    """Days the cash lasts at ``per_day``; None if nothing is being spent."""
    if per_day is None or per_day <= 0:
        return None
    return max(cash, Decimal(0)) / per_day


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    if state.last_observed_at is None or state.now is None:
        return state, []
    # Only an account that had credit can have it run out; a shared portfolio's cash is not
    # this account's runway.
    exhausted = state.peak_grant > 0 and state.valid_grant <= 0 and not state.cash_shared
    if not exhausted and CASH_LOW not in state.open:
        return state, []  # nothing to open or close: spare the burn rate
    per_day = total_burn(state, settings, ledger)
    runway = runway_days(state.valid_cash, per_day)
    line = settings.cash_runway_days
    hysteresis = settings.thresholds_for(state.advertiser_id).hysteresis_percent / 100
    firing = exhausted and runway is not None and runway < line
    clear = not exhausted or runway is None or runway >= line * (1 + hysteresis)
    observed_at = state.last_observed_at

    def say(subject: Subject) -> Messages:
        empty_at = observed_at + timedelta(days=float(runway)) if runway is not None else None
        values: dict[str, Value] = {
            "valid_cash_balance": state.valid_cash,
            "spend_rate_per_day": per_day or Decimal(0),
            "runway_days": runway if runway is not None else "",
            "cash_runs_out_at": empty_at.isoformat() if empty_at else "",
            "runway_line_days": line,
            "balance_reminder": flag_text(state.balance_reminder),
        }
        fire = (
            f"Ad credit for {who(subject)} is used up and the cash balance "
            f"({state.valid_cash:.2f} {subject.currency}) lasts about "
            f"{runway if runway is not None else 0:.1f} days at {per_day or 0:.2f}/day: on "
            "manual payment, delivery stops when it runs out. Add funds or credit."
        )
        resolve = (
            f"The cash of {who(subject)} is now a shared Payment Portfolio's: not its own runway."
            if state.cash_shared
            else f"Ad credit is back for {who(subject)}."
            if not exhausted
            else f"The cash balance of {who(subject)} covers {line} days or more again."
        )
        return fire, resolve, values

    rule = Rule(CASH_LOW, "critical")
    return sync_state(state, rule, state.now, firing=firing, clear=clear, say=say)
