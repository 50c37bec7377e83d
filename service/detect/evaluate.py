"""The one evaluator: record a snapshot's fact, then run every account rule on the result.

Each rule is a pure function ``(state, snapshot, ledger, settings) -> (state, transitions)``
in its own module; they run in a fixed order on the state ``facts.record`` produced, and the
final state and all transitions are committed together by ``StateStore.apply``.

Usage::

    transitions = await store.apply(adv_id, lambda s: evaluate(s, snapshot, ledger, settings))
"""

from __future__ import annotations

from collections.abc import Callable

from config.settings import DetectSettings
from service.alerts import AlertTransition
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
    staleness,
)
from service.detect.facts import AccountSnapshot, record
from service.detect.state import AccountState, Evaluation
from service.ledger import AccountLedger

__all__ = ["RULES", "AccountRule", "evaluate"]

AccountRule = Callable[
    [AccountState, AccountSnapshot, AccountLedger, DetectSettings],
    tuple[AccountState, list[AlertTransition]],
]

RULES: tuple[AccountRule, ...] = (
    staleness.evaluate,
    credit_balance.evaluate,
    forecast.evaluate,
    frozen.evaluate,
    cash.evaluate,
    issued.evaluate,
    expiry.evaluate,
    discount.evaluate,
    ladder.evaluate,
    reconcile.evaluate,
)


def evaluate(
    state: AccountState | None,
    snapshot: AccountSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> Evaluation[AccountState] | None:
    """The next state and its transitions; None if the snapshot brings nothing new."""
    current = record(state, snapshot, ledger)
    if current is None:
        return None
    transitions: list[AlertTransition] = []
    for rule in RULES:
        current, emitted = rule(current, snapshot, ledger, settings)
        transitions.extend(emitted)
    return Evaluation(current, transitions)
