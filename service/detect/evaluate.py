"""The one evaluator: record a snapshot's fact, then run every account rule on the result.

Each rule is a pure function ``(state, snapshot, ledger, settings) -> (state, transitions)``
in its own module; they run in a fixed order on the state ``facts.record`` produced, and the
final state and all transitions are committed together by ``StateStore.apply``. A rule that
raises is skipped for that snapshot, the others still run (``rule_failures``).

Usage::

    transitions = await store.apply(adv_id, lambda s: evaluate(s, snapshot, ledger, settings))
"""

from __future__ import annotations

from config.settings import DetectSettings
from service.detect import (
    cash,
    credit_balance,
    discount,
    expiry,
    forecast,
    frozen,
    issued,
    ladder,
    reconcile,
    rollup,
    staleness,
)
from service.detect.facts import AccountSnapshot, midnights_for, record
from service.detect.ledger import AccountLedger
from service.detect.rule_failures import AccountRule, RuleRun
from service.detect.state import AccountState, Evaluation
from workers.contract.alerts import AlertTransition

__all__ = ["RULES", "AccountRule", "evaluate"]

# By name, in the order they run; the name labels the rule's errors (metric, /readyz).
RULES: dict[str, AccountRule] = {
    "staleness": staleness.evaluate,
    "credit_balance": credit_balance.evaluate,
    "forecast": forecast.evaluate,
    "frozen": frozen.evaluate,
    "cash": cash.evaluate,
    "issued": issued.evaluate,
    "expiry": expiry.evaluate,
    "discount": discount.evaluate,
    "ladder": ladder.evaluate,
    "reconcile": reconcile.evaluate,
}


def evaluate(
    state: AccountState | None,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
    run: RuleRun | None = None,
) -> Evaluation[AccountState] | None:
    """The next state and its transitions; None if the snapshot brings nothing new.

    With ``run`` (the detector's), a rule that raises is skipped and recorded there (see
    ``rule_failures``); without it (pure tests) the exception goes to the caller.
    """
    current = record(state, snapshot, ledger, rollup.window(settings), midnights_for(settings))
    if current is None:
        return None
    transitions: list[AlertTransition] = []
    for name, rule in RULES.items():
        if run is None:
            current, emitted = rule(current, snapshot, ledger, settings)
        else:
            current, emitted = run.apply(
                name, rule, current, snapshot=snapshot, ledger=ledger, settings=settings
            )
        transitions.extend(emitted)
    return Evaluation(current, transitions)
