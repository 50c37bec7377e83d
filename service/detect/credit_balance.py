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

    evaluation = evaluate(state, snapshot, thresholds)   # None if the snapshot is not newer
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from config.settings import Thresholds
from service.alerts import AlertTransition, Severity
from service.detect.state import AccountState, Evaluation, OpenEpisode, newer
from workers.snapshots import AccountBalanceSnapshot

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
    state: AccountState | None, snapshot: AccountBalanceSnapshot, thresholds: Thresholds
) -> Evaluation | None:
    """Advance one advertiser's state by one snapshot; None if it is a duplicate or stale."""
    if not newer(state, snapshot.observed_at):
        return None
    balance = snapshot.balances.valid_grant_balance
    peak = balance if state is None else max(state.peak_grant, balance)
    episodes = dict(state.open) if state else {}
    transitions: list[AlertTransition] = []

    line = low_line(peak, thresholds)
    clear_of_line = line * (1 + thresholds.hysteresis_percent / _HUNDRED)
    has_had_credit = peak > 0

    low_values = {**_values(snapshot), "low_threshold": line, "peak_grant_balance": peak}
    low = _Rule(LOW, "warning", low_values)
    if LOW not in episodes and has_had_credit and balance <= line:
        transitions.append(_open(episodes, snapshot, low, _low_summary(snapshot, peak)))
    elif LOW in episodes and balance > clear_of_line:
        transitions.append(_close(episodes, snapshot, low, _back_summary(snapshot)))
        # A top-up that lifts the balance clear starts a new baseline for the percent line.
        peak = balance

    exhausted = _Rule(EXHAUSTED, "critical", _values(snapshot))
    exhausted_band = line * thresholds.hysteresis_percent / _HUNDRED
    if EXHAUSTED not in episodes and has_had_credit and balance <= 0:
        summary = (
            f"Ad credit for {_who(snapshot)} is used up: spend is now billed to cash "
            "or the card on file."
        )
        transitions.append(_open(episodes, snapshot, exhausted, summary))
    elif EXHAUSTED in episodes and balance > exhausted_band:
        transitions.append(_close(episodes, snapshot, exhausted, _back_summary(snapshot)))

    next_state = AccountState(
        advertiser_id=snapshot.advertiser_id,
        last_observed_at=snapshot.observed_at,
        valid_grant=balance,
        peak_grant=peak,
        open=episodes,
    )
    return Evaluation(state=next_state, transitions=transitions)


@dataclass(frozen=True)
class _Rule:
    kind: str
    severity: Severity
    values: dict[str, Decimal]


def _open(
    episodes: dict[str, OpenEpisode], snapshot: AccountBalanceSnapshot, rule: _Rule, summary: str
) -> AlertTransition:
    transition = AlertTransition.for_snapshot(
        snapshot,
        kind=rule.kind,
        status="firing",
        severity=rule.severity,
        starts_at=snapshot.observed_at,
        summary=summary,
        values=rule.values,
    )
    episodes[rule.kind] = OpenEpisode(alert_id=transition.alert_id, starts_at=snapshot.observed_at)
    return transition


def _close(
    episodes: dict[str, OpenEpisode], snapshot: AccountBalanceSnapshot, rule: _Rule, summary: str
) -> AlertTransition:
    episode = episodes.pop(rule.kind)
    return AlertTransition.for_snapshot(
        snapshot,
        kind=rule.kind,
        status="resolved",
        severity=rule.severity,
        starts_at=episode.starts_at,
        summary=summary,
        values=rule.values,
    )


def _values(snapshot: AccountBalanceSnapshot) -> dict[str, Decimal]:
    balances = snapshot.balances
    return {
        "valid_grant_balance": balances.valid_grant_balance,
        "frozen_grant_balance": balances.frozen_grant_balance,
        "valid_cash_balance": balances.valid_cash_balance,
    }


def _who(snapshot: AccountBalanceSnapshot) -> str:
    name = snapshot.advertiser_name or "advertiser"
    return f"{name} ({snapshot.advertiser_id})"


def _low_summary(snapshot: AccountBalanceSnapshot, peak: Decimal) -> str:
    balance = snapshot.balances.valid_grant_balance
    share = (balance * _HUNDRED / peak).quantize(Decimal(1)) if peak else Decimal(0)
    return (
        f"Ad credit for {_who(snapshot)} is low: {balance:.2f} {snapshot.currency} left "
        f"({share}% of {peak:.2f}); when it runs out, spend moves to cash or the card."
    )


def _back_summary(snapshot: AccountBalanceSnapshot) -> str:
    balance = snapshot.balances.valid_grant_balance
    return f"Ad credit for {_who(snapshot)} is back: {balance:.2f} {snapshot.currency} available."
