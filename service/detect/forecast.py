"""``credit.depletion_forecast``: the ad credit will run out within the horizon at today's burn.

The burn rate is recent daily grant spend refined by intraday drops of the grant balance
(``figures.grant_burn``). The projection starts from the newest balance:
``projected_exhaustion_at = observed_at + valid_grant / burn_per_day``. It fires when that is
within ``detect.depletion_horizon_h`` (72 h), and resolves when the projection moves
``hysteresis_percent`` beyond the horizon (a top-up, slower spend) or the credit has run out
(``credit.exhausted`` takes over).

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from config.settings import DetectSettings
from service.detect.episodes import Messages, Rule, Subject, Value, flag_text, sync_state, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import grant_burn
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["DEPLETION", "evaluate", "exhaustion_at"]

DEPLETION = "credit.depletion_forecast"
_HOUR = Decimal(3600)


def exhaustion_at(balance: Decimal, per_day: Decimal, since: datetime) -> datetime | None:
    """When ``balance`` is gone at ``per_day``; None if nothing is being spent."""
    if per_day <= 0:
        return None
    return since + timedelta(days=float(balance / per_day))


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    balance = state.valid_grant
    if state.last_observed_at is None or state.now is None:
        return state, []
    if balance <= 0 and DEPLETION not in state.open:
        return state, []  # run out, nothing to close: spare the burn rate
    per_day = grant_burn(state, settings, ledger) or Decimal(0)
    runs_out = exhaustion_at(balance, per_day, state.last_observed_at)
    horizon = timedelta(hours=settings.depletion_horizon_h)
    hysteresis = settings.thresholds_for(state.advertiser_id).hysteresis_percent / 100
    clear_horizon = horizon * float(1 + hysteresis)
    firing = balance > 0 and runs_out is not None and runs_out - state.now <= horizon
    clear = balance <= 0 or runs_out is None or runs_out - state.now > clear_horizon
    now = state.now

    def say(subject: Subject) -> Messages:
        values: dict[str, Value] = {
            "burn_rate_per_day": per_day,
            "projected_exhaustion_at": runs_out.isoformat() if runs_out else "",
            "valid_grant_balance": balance,
            "horizon_hours": f"{settings.depletion_horizon_h:g}",
            "balance_reminder": flag_text(state.balance_reminder),
        }
        hours = ((runs_out - now).total_seconds() / 3600) if runs_out is not None else float("inf")
        fire = (
            f"Ad credit for {who(subject)} runs out in about {hours:.0f} h "
            f"(around {runs_out:%Y-%m-%d %H:%M} UTC) at {per_day:.2f} {subject.currency}/day: "
            f"{balance:.2f} left. After that, spend is billed to cash or the card."
            if runs_out is not None
            else ""
        )
        if balance <= 0:
            resolve = f"Ad credit for {who(subject)} has run out (see credit.exhausted)."
        else:
            resolve = (
                f"Ad credit for {who(subject)} is no longer expected to run out within "
                f"{settings.depletion_horizon_h:g} h."
            )
        return fire, resolve, values

    rule = Rule(DEPLETION, "warning")
    return sync_state(state, rule, now, firing=firing, clear=clear, say=say)
