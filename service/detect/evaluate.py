"""The one evaluator: record a snapshot's fact, then run every account rule on the result.

Each rule is a pure function ``(state, snapshot, ledger, settings) -> (state, transitions)``
in its own module; they run in a fixed order on the state ``facts.record`` produced, and the
final state and all transitions are committed together by ``StateStore.apply``. A rule is
listed with the kinds of snapshot it reads and runs only on those: none sorts its input, and
one that needs a kind's fields is typed for that kind. A rule that raises is skipped for that
snapshot, the others still run (``rule_failures``).

Usage::

    transitions = await store.apply(adv_id, lambda s: evaluate(s, snapshot, ledger, settings))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, get_args

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
from service.detect.rule_failures import AccountRule, RuleRun, S
from service.detect.state import AccountState, Evaluation
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot, CreditTransactionSnapshot

__all__ = ["ANY_SNAPSHOT", "RULES", "Listed", "evaluate"]

ANY_SNAPSHOT: tuple[type[AccountSnapshot], ...] = get_args(AccountSnapshot)


@dataclass(frozen=True, slots=True)
class Listed(Generic[S]):
    """A rule and the kinds of snapshot it runs on."""

    rule: AccountRule[S]
    reads: tuple[type[S], ...]


# By name, in the order they run; the name labels the rule's errors (metric, /readyz).
RULES: dict[str, Listed[Any]] = {
    "staleness": Listed(staleness.evaluate, (AccountBalanceSnapshot,)),
    "credit_balance": Listed(credit_balance.evaluate, (AccountBalanceSnapshot,)),
    "forecast": Listed(forecast.evaluate, ANY_SNAPSHOT),
    "frozen": Listed(frozen.evaluate, (AccountBalanceSnapshot,)),
    "cash": Listed(cash.evaluate, ANY_SNAPSHOT),
    "issued": Listed(issued.evaluate, (CreditTransactionSnapshot,)),
    "expiry": Listed(expiry.evaluate, ANY_SNAPSHOT),
    "discount": Listed(discount.evaluate, ANY_SNAPSHOT),
    "ladder": Listed(ladder.evaluate, ANY_SNAPSHOT),
    "reconcile": Listed(reconcile.evaluate, ANY_SNAPSHOT),
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
    ran: list[str] = []
    for name, listed in RULES.items():
        if not isinstance(snapshot, listed.reads):
            continue
        if run is None:
            current, emitted = listed.rule(current, snapshot, ledger, settings)
        else:
            outcome = run.apply(
                name, listed.rule, current, snapshot=snapshot, ledger=ledger, settings=settings
            )
            if outcome is None:
                continue  # it raised: skipped, and recorded in ``run``
            current, emitted = outcome
            ran.append(name)
        transitions.extend(emitted)
    if run is not None:
        run.ran_clean(current.advertiser_id, ran)
    return Evaluation(current, transitions)
