"""The evaluator: each rule runs only on the kinds of snapshot it is listed for, in order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from config.settings import DetectSettings
from service.detect import evaluate
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from tests.support.snapshots import day_spend, grant_snapshot
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot, DailySpendSnapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class Recording:
    """A rule that notes the kind of every snapshot it is given."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(
        self,
        state: AccountState,
        snapshot: AccountSnapshot,
        ledger: AccountLedger,
        settings: DetectSettings,
    ) -> tuple[AccountState, list[AlertTransition]]:
        self.kinds.append(snapshot.kind)
        return state, []


def test_a_rule_runs_only_on_the_snapshots_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    on_spend, on_any = Recording(), Recording()
    monkeypatch.setattr(
        evaluate,
        "RULES",
        {
            "spend_only": evaluate.Listed(on_spend, (DailySpendSnapshot,)),
            "any": evaluate.Listed(on_any, evaluate.ANY_SNAPSHOT),
        },
    )
    snapshots: list[AccountSnapshot] = [
        grant_snapshot("70", "71", "100", T0),
        day_spend("71", date(2026, 10, 31), T0 + timedelta(minutes=1), grant="5"),
        grant_snapshot("70", "71", "95", T0 + timedelta(minutes=2)),
    ]
    state = None
    for snapshot in snapshots:
        result = evaluate.evaluate(state, snapshot, AccountLedger(), DetectSettings())
        assert result is not None
        state = result.state
    assert on_spend.kinds == ["daily_spend"]
    assert on_any.kinds == ["account_balance", "daily_spend", "account_balance"]


def test_every_kind_of_account_snapshot_is_read_by_some_rule() -> None:
    read = {kind for listed in evaluate.RULES.values() for kind in listed.reads}
    assert read == set(evaluate.ANY_SNAPSHOT)
    balance_rules = [n for n, r in evaluate.RULES.items() if AccountBalanceSnapshot in r.reads]
    assert {"staleness", "credit_balance", "frozen"} <= set(balance_rules)
