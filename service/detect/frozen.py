"""``credit.frozen``: part of the ad credit is frozen (a risk hold) and cannot be spent.

Fires when ``frozen_grant_balance`` rises above 0, resolves when it is back to 0. The summary
says an appeal is possible from the Promotions page.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from config.settings import DetectSettings
from service.alerts import AlertTransition
from service.detect.episodes import Episodes, Rule, subject_of, sync, who
from service.detect.facts import AccountSnapshot
from service.detect.state import AccountState
from service.ledger import AccountLedger
from workers.snapshots import AccountBalanceSnapshot

__all__ = ["FROZEN", "evaluate"]

FROZEN = "credit.frozen"


def evaluate(
    state: AccountState,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> tuple[AccountState, list[AlertTransition]]:
    if not isinstance(snapshot, AccountBalanceSnapshot):
        return state, []
    subject = subject_of(state)
    frozen = state.frozen_grant
    values = {"frozen_grant_balance": frozen, "valid_grant_balance": state.valid_grant}
    fire = (
        f"{frozen:.2f} {subject.currency} of ad credit for {who(subject)} is frozen (risk "
        "hold) and cannot be spent. An appeal is possible from the Promotions page in "
        "Ads Manager."
    )
    resolve = f"The hold on ad credit for {who(subject)} is lifted: nothing is frozen now."
    episodes = Episodes.of(state)
    transitions = sync(
        episodes,
        subject,
        Rule(FROZEN, "warning"),
        snapshot.observed_at,
        firing=frozen > 0,
        clear=frozen <= 0,
        fire=(fire, values),
        resolve=(resolve, values),
    )
    return episodes.updated(state), transitions
