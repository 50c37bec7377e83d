"""The ad-credit balance rules: ``credit.low`` and ``credit.exhausted``.

Both read the *valid* grant balance (ad credit that can still be spent; frozen credit is not).

- ``credit.low`` fires when the balance is at or under the low line: ``low_percent`` of the
  largest balance seen since the last top-up, or ``low_amount``, whichever is higher. It
  resolves only once the balance climbs ``hysteresis_percent`` above the line, so a balance
  jittering at the line fires once.
- ``credit.exhausted`` fires when the balance reaches 0 after having been above it: from then
  on TikTok bills cash or the card, silently. It resolves when credit is back (by more than a
  small band, for the same reason).

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)   # balance snapshots only
"""

from __future__ import annotations

from decimal import Decimal

from msgspec.structs import replace

from config.settings import DetectSettings, Thresholds
from service.detect.episodes import (
    Episodes,
    Rule,
    Subject,
    Value,
    close,
    flag_text,
    open_,
    subject_of,
    who,
)
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot

__all__ = ["EXHAUSTED", "LOW", "evaluate", "low_line"]

LOW = "credit.low"
EXHAUSTED = "credit.exhausted"
_HUNDRED = Decimal(100)


def low_line(peak: Decimal, thresholds: Thresholds) -> Decimal:
    """The balance at or under which credit counts as low."""
    lines = [Decimal(0)]
    if thresholds.low_percent is not None:
        lines.append(peak * thresholds.low_percent / _HUNDRED)
    if thresholds.low_amount is not None:
        lines.append(thresholds.low_amount)
    return max(lines)


def evaluate(
    state: AccountState,
    snapshot: AccountBalanceSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> tuple[AccountState, list[AlertTransition]]:
    """Advance the low/exhausted episodes by one (already recorded) balance snapshot."""
    thresholds = settings.thresholds_for(snapshot.advertiser_id)
    now = snapshot.observed_at
    balance = snapshot.balances.valid_grant_balance
    peak = max(state.peak_grant, balance)
    line = low_line(peak, thresholds)
    clear_of_line = line * (1 + thresholds.hysteresis_percent / _HUNDRED)
    has_had_credit = peak > 0
    exhausted_band = line * thresholds.hysteresis_percent / _HUNDRED
    low_open, exhausted_open = LOW in state.open, EXHAUSTED in state.open
    if not (
        (not low_open and has_had_credit and balance <= line)
        or (low_open and balance > clear_of_line)
        or (not exhausted_open and has_had_credit and balance <= 0)
        or (exhausted_open and balance > exhausted_band)
    ):
        # Most snapshots open and close nothing: spare the messages.
        return (state if peak == state.peak_grant else replace(state, peak_grant=peak)), []
    subject = subject_of(state)
    episodes = Episodes.of(state)
    transitions: list[AlertTransition] = []

    low = Rule(LOW, "warning")
    low_values = {**_values(snapshot), "low_threshold": line, "peak_grant_balance": peak}
    if LOW not in episodes and has_had_credit and balance <= line:
        message = (_low_summary(subject, balance, peak), low_values)
        transitions += open_(episodes, subject, low, now, message)
    elif LOW in episodes and balance > clear_of_line:
        transitions.append(
            close(episodes, subject, low, now, (_back(subject, balance), low_values))
        )
        # A top-up that lifts the balance clear starts a new baseline for the percent line.
        peak = balance

    exhausted = Rule(EXHAUSTED, "critical")
    values = _values(snapshot)
    if EXHAUSTED not in episodes and has_had_credit and balance <= 0:
        summary = (
            f"Ad credit for {who(subject)} is used up: spend is now billed to cash "
            "or the card on file."
        )
        transitions += open_(episodes, subject, exhausted, now, (summary, values))
    elif EXHAUSTED in episodes and balance > exhausted_band:
        transitions.append(
            close(episodes, subject, exhausted, now, (_back(subject, balance), values))
        )

    return episodes.updated(state, peak_grant=peak), transitions


def _values(snapshot: AccountBalanceSnapshot) -> dict[str, Value]:
    balances = snapshot.balances
    return {
        "valid_grant_balance": balances.valid_grant_balance,
        "frozen_grant_balance": balances.frozen_grant_balance,
        "valid_cash_balance": balances.valid_cash_balance,
        "balance_reminder": flag_text(snapshot.balance_reminder),
    }


def _low_summary(subject: Subject, balance: Decimal, peak: Decimal) -> str:
    share = (balance * _HUNDRED / peak).quantize(Decimal(1)) if peak else Decimal(0)
    return (
        f"Ad credit for {who(subject)} is low: {balance:.2f} {subject.currency} left "
        f"({share}% of {peak:.2f}); when it runs out, spend moves to cash or the card."
    )


def _back(subject: Subject, balance: Decimal) -> str:
    return f"Ad credit for {who(subject)} is back: {balance:.2f} {subject.currency} available."
