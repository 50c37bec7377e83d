"""``credit.frozen``: part of the ad credit is frozen (a risk hold) and cannot be spent.

Fires when ``frozen_grant_balance`` rises above 0, resolves when it is back to 0. The summary
says an appeal is possible from the Promotions page.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from config.settings import DetectSettings
from service.detect.episodes import Messages, Rule, Subject, Value, flag_text, sync_state, who
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["FROZEN", "evaluate"]

FROZEN = "credit.frozen"


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    frozen = state.frozen_grant

    def say(subject: Subject) -> Messages:
        values: dict[str, Value] = {
            "frozen_grant_balance": frozen,
            "valid_grant_balance": state.valid_grant,
            "balance_reminder": flag_text(state.balance_reminder),
        }
        fire = (
            f"{frozen:.2f} {subject.currency} of ad credit for {who(subject)} is frozen (risk "
            "hold) and cannot be spent. An appeal is possible from the Promotions page in "
            "Ads Manager."
        )
        resolve = f"The hold on ad credit for {who(subject)} is lifted: nothing is frozen now."
        return fire, resolve, values

    rule = Rule(FROZEN, "warning")
    return sync_state(
        state, rule, snapshot.observed_at, firing=frozen > 0, clear=frozen <= 0, say=say
    )
