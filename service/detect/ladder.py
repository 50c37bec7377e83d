"""Ladder programs ("spend X, get Y"): ``ladder.tier_reached``, ``ladder.at_risk``,
``ladder.window_closing``.

Qualifying spend is the *cash* spend on the window's days (credit-funded spend does not
count), from the daily spend figures. Per program and its next unreached tier:

- ``ladder.tier_reached`` (info, one-shot) when qualifying spend reaches a tier;
- ``ladder.at_risk`` while the window is open and the current daily cash spend is below the
  pace needed to reach the next tier before the window ends
  (``required_daily_spend = (threshold - qualifying) / days left``); it resolves when the pace
  is ``hysteresis_percent`` above what is needed, the tier is reached or the window closes;
- ``ladder.window_closing`` in the last ``detect.ladder_closing_h`` (48 h) of the window with a
  tier still to reach; it resolves when the tier is reached or the window has closed.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from config.ledger import LadderProgram, LadderTier
from config.settings import DetectSettings
from service.detect.burn import seconds
from service.detect.episodes import (
    Episodes,
    Message,
    Rule,
    Subject,
    Value,
    close,
    notify_once,
    subject_of,
    sync,
    who,
)
from service.detect.facts import AccountSnapshot
from service.detect.figures import cash_burn, spend_days
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["AT_RISK", "TIER_REACHED", "WINDOW_CLOSING", "evaluate", "qualifying_spend"]

TIER_REACHED = "ladder.tier_reached"
AT_RISK = "ladder.at_risk"
WINDOW_CLOSING = "ladder.window_closing"
_DAY = Decimal(86_400)


def qualifying_spend(state: AccountState, program: LadderProgram) -> Decimal:
    """Cash spend on the days of the earning window (UTC days)."""
    first = program.window_start.date()
    last = (program.window_end - timedelta(microseconds=1)).date()
    cash = spend_days(state, "cash")
    return sum((amount for day, amount in cash.items() if first <= day <= last), Decimal(0))


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    if state.now is None or not ledger.programs:
        return state, []
    subject = subject_of(state)
    episodes = Episodes.of(state)
    notified = list(state.notified)
    transitions: list[AlertTransition] = []
    measured = cash_burn(state, settings)
    pace = measured or Decimal(0)
    hysteresis = settings.thresholds_for(state.advertiser_id).hysteresis_percent / 100
    for program in ledger.programs:
        qualifying = qualifying_spend(state, program)
        for tier in program.tiers:
            if qualifying >= tier.threshold:
                transitions += _reached(
                    notified,
                    subject,
                    program=program,
                    tier=tier,
                    qualifying=qualifying,
                    now=state.now,
                )
        following = next((t for t in program.tiers if qualifying < t.threshold), None)
        transitions += _close_stale_tiers(episodes, subject, program, following, state.now)
        if following is None:
            continue
        now = state.now
        is_open = program.window_start <= now < program.window_end
        days_left = max(seconds(program.window_end - now) / _DAY, Decimal(0))
        required = (following.threshold - qualifying) / days_left if days_left > 0 else Decimal(0)
        values: dict[str, Value] = {
            "program_id": program.id,
            "qualifying_spend": qualifying,
            "next_tier_threshold": following.threshold,
            "next_tier_reward": following.reward,
            "required_daily_spend": required,
            "current_daily_spend": pace,
            "window_ends_at": program.window_end,
        }
        about = f"{program.id}|{following.threshold}"
        transitions += sync(
            episodes,
            subject,
            Rule(AT_RISK, "warning", about),
            now,
            # No pace measured yet is not "behind": it is unknown.
            firing=is_open and measured is not None and pace < required,
            clear=not is_open or pace >= required * (1 + hysteresis),
            fire=_at_risk_message(
                subject,
                program,
                tier=following,
                values=values,
                qualifying=qualifying,
                required=required,
                pace=pace,
            ),
            resolve=_resolve_message(subject, program, now, values, "on pace again"),
        )
        closing = program.window_end - timedelta(hours=settings.ladder_closing_h) <= now
        transitions += sync(
            episodes,
            subject,
            Rule(WINDOW_CLOSING, "warning", about),
            now,
            firing=is_open and closing,
            clear=not is_open,
            fire=_closing_message(subject, program, following, values, qualifying),
            resolve=_resolve_message(subject, program, now, values, "window closed"),
        )
    return episodes.updated(state, notified=notified), transitions


def _reached(
    notified: list[str],
    subject: Subject,
    *,
    program: LadderProgram,
    tier: LadderTier,
    qualifying: Decimal,
    now: datetime,
) -> list[AlertTransition]:
    values: dict[str, Value] = {
        "program_id": program.id,
        "qualifying_spend": qualifying,
        "tier_threshold": tier.threshold,
        "reward": tier.reward,
        "window_ends_at": program.window_end,
    }
    summary = (
        f"{who(subject)} reached the {tier.threshold:.2f} {program.currency} tier of ladder "
        f"'{program.name or program.id}': {tier.reward:.2f} reward is due after the window."
    )
    rule = Rule(TIER_REACHED, "info", f"{program.id}|{tier.threshold}")
    return notify_once(notified, subject, rule, now, (summary, values))


def _close_stale_tiers(
    episodes: Episodes,
    subject: Subject,
    program: LadderProgram,
    following: LadderTier | None,
    now: datetime,
) -> list[AlertTransition]:
    """Episodes about a tier that has since been reached end with it."""
    current = f"{program.id}|{following.threshold}" if following else None
    transitions = []
    for kind in (AT_RISK, WINDOW_CLOSING):
        prefix = f"{kind}|{program.id}|"
        for key in sorted(k for k in episodes if k.startswith(prefix)):
            about = key.removeprefix(f"{kind}|")
            if about == current:
                continue
            summary = f"{who(subject)} reached the tier of ladder '{program.name or program.id}'."
            values = {"program_id": program.id, "reason": "tier reached"}
            rule = Rule(kind, "warning", about)
            transitions.append(close(episodes, subject, rule, now, (summary, values)))
    return transitions


def _at_risk_message(
    subject: Subject,
    program: LadderProgram,
    *,
    tier: LadderTier,
    values: dict[str, Value],
    qualifying: Decimal,
    required: Decimal,
    pace: Decimal,
) -> Message:
    summary = (
        f"Ladder '{program.name or program.id}' of {who(subject)} is at risk: "
        f"{qualifying:.2f} of {tier.threshold:.2f} {program.currency} qualifying cash spend; "
        f"{required:.2f}/day is needed until {program.window_end:%Y-%m-%d %H:%M} UTC, "
        f"current pace {pace:.2f}/day. Credit-funded spend does not count."
    )
    return summary, values


def _closing_message(
    subject: Subject,
    program: LadderProgram,
    tier: LadderTier,
    values: dict[str, Value],
    qualifying: Decimal,
) -> Message:
    summary = (
        f"The earning window of ladder '{program.name or program.id}' of {who(subject)} closes "
        f"{program.window_end:%Y-%m-%d %H:%M} UTC: {tier.threshold - qualifying:.2f} "
        f"{program.currency} more qualifying cash spend reaches the {tier.threshold:.2f} tier."
    )
    return summary, values


def _resolve_message(
    subject: Subject, program: LadderProgram, now: datetime, values: dict[str, Value], why: str
) -> Message:
    if now >= program.window_end:
        why = "window closed"
    summary = f"Ladder '{program.name or program.id}' of {who(subject)}: {why}."
    return summary, {**values, "reason": why}
