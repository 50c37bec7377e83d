"""The credit.low / credit.exhausted rules, on hand-made snapshots (no Redis needed).

Snapshots go through the whole evaluator (every rule); the assertions look at these two kinds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import DetectSettings, Thresholds
from service.detect.credit_balance import EXHAUSTED, LOW, low_line
from service.detect.evaluate import evaluate as evaluate_all
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState, Evaluation
from tests.support.snapshots import grant_snapshot
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import AccountBalanceSnapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT = Thresholds()
NO_LEDGER = AccountLedger()


def evaluate(
    state: AccountState | None, snapshot: AccountBalanceSnapshot, thresholds: Thresholds
) -> Evaluation[AccountState] | None:
    return evaluate_all(state, snapshot, NO_LEDGER, DetectSettings(thresholds=thresholds))


def snap(valid_grant: str, minute: int, advertiser_id: str = "71") -> AccountBalanceSnapshot:
    observed_at = T0 + timedelta(minutes=minute)
    return grant_snapshot(
        "70", advertiser_id, valid_grant, observed_at, name="Draining Shop", valid_cash="50"
    )


def run(balances: list[str], thresholds: Thresholds = DEFAULT) -> list[AlertTransition]:
    state: AccountState | None = None
    emitted: list[AlertTransition] = []
    for minute, balance in enumerate(balances):
        result = evaluate(state, snap(balance, minute), thresholds)
        assert result is not None
        state = result.state
        emitted.extend(t for t in result.transitions if t.kind in (LOW, EXHAUSTED))
    return emitted


def kinds(transitions: list[AlertTransition]) -> list[tuple[str, str]]:
    return [(t.kind, t.status) for t in transitions if t.kind in (LOW, EXHAUSTED)]


def test_low_line_takes_the_higher_of_percent_and_amount() -> None:
    assert low_line(Decimal("300"), Thresholds()) == Decimal("60")
    both = Thresholds(low_percent=Decimal("10"), low_amount=Decimal("50"))
    assert low_line(Decimal("300"), both) == Decimal("50")
    assert low_line(Decimal("1000"), both) == Decimal("100")
    assert low_line(Decimal("300"), Thresholds(low_percent=None)) == Decimal("0")


def test_draining_account_fires_low_then_exhausted_once_each() -> None:
    emitted = run(["300", "200", "100", "61", "60", "40", "10", "0", "0", "0"])
    assert kinds(emitted) == [(LOW, "firing"), (EXHAUSTED, "firing")]
    low, exhausted = emitted
    assert low.severity == "warning"
    assert exhausted.severity == "critical"
    assert low.values["valid_grant_balance"] == "60.00"
    assert low.values["low_threshold"] == "60.00"
    assert low.values["peak_grant_balance"] == "300.00"
    assert exhausted.values["valid_grant_balance"] == "0.00"
    assert "cash or the card" in exhausted.summary
    assert low.starts_at == T0 + timedelta(minutes=4)


def test_top_up_resolves_both_with_the_same_alert_ids() -> None:
    emitted = run(["300", "50", "0", "400", "390"])
    assert kinds(emitted) == [
        (LOW, "firing"),
        (EXHAUSTED, "firing"),
        (LOW, "resolved"),
        (EXHAUSTED, "resolved"),
    ]
    fired = {t.kind: t for t in emitted if t.status == "firing"}
    for resolved in (t for t in emitted if t.status == "resolved"):
        assert resolved.alert_id == fired[resolved.kind].alert_id
        assert resolved.starts_at == fired[resolved.kind].starts_at
        assert resolved.ends_at == T0 + timedelta(minutes=3)
        assert "back" in resolved.summary


def test_jitter_around_the_line_fires_once() -> None:
    # 60 is the line; resolution needs more than 66 (10 % hysteresis).
    emitted = run(["300", "59", "61", "59.5", "65", "58", "66", "60"])
    assert kinds(emitted) == [(LOW, "firing")]


def test_jitter_at_zero_fires_exhausted_once() -> None:
    emitted = run(["300", "0", "0.01", "0", "0.50", "0"])
    assert kinds(emitted) == [(LOW, "firing"), (EXHAUSTED, "firing")]


def test_small_top_up_sets_a_new_baseline() -> None:
    # Topped up to 100 from 0: clear of the old line (66), so resolved; the new peak is 100,
    # so the next low episode starts at 20, not at 60.
    emitted = run(["300", "0", "100", "50", "21", "20"])
    assert kinds(emitted) == [
        (LOW, "firing"),
        (EXHAUSTED, "firing"),
        (LOW, "resolved"),
        (EXHAUSTED, "resolved"),
        (LOW, "firing"),
    ]
    assert emitted[-1].values["peak_grant_balance"] == "100.00"


def test_account_that_never_had_credit_is_silent() -> None:
    assert run(["0", "0", "0"]) == []


def test_absolute_amount_fires_from_the_first_snapshot() -> None:
    emitted = run(["40", "39"], Thresholds(low_percent=None, low_amount=Decimal("50")))
    assert kinds(emitted) == [(LOW, "firing")]


def test_duplicate_and_older_snapshots_change_nothing() -> None:
    first = evaluate(None, snap("300", 5), DEFAULT)
    assert first is not None
    assert evaluate(first.state, snap("10", 5), DEFAULT) is None
    assert evaluate(first.state, snap("10", 4), DEFAULT) is None


def test_alert_ids_are_deterministic_per_episode() -> None:
    assert [t.alert_id for t in run(["300", "10"])] == [t.alert_id for t in run(["300", "10"])]
    other = evaluate(None, snap("300", 0, advertiser_id="72"), DEFAULT)
    assert other is not None
    low_other = evaluate(other.state, snap("10", 1, advertiser_id="72"), DEFAULT)
    assert low_other is not None
    assert low_other.transitions[0].alert_id != run(["300", "10"])[0].alert_id


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False), min_size=1, max_size=40
    ),
    st.data(),
)
def test_replaying_snapshots_never_notifies_twice(
    balances: list[Decimal], data: st.DataObject
) -> None:
    """Re-delivering any earlier snapshot, in any order, emits nothing new."""
    snapshots = [snap(str(b), minute) for minute, b in enumerate(balances)]
    state: AccountState | None = None
    emitted: list[AlertTransition] = []
    for index, current in enumerate(snapshots):
        result = evaluate(state, current, DEFAULT)
        assert result is not None
        state = result.state
        emitted.extend(result.transitions)
        replays = data.draw(st.lists(st.sampled_from(snapshots[: index + 1]), max_size=3))
        for replay in replays:
            assert evaluate(state, replay, DEFAULT) is None
    ids = [t.transition_id for t in emitted]
    assert len(ids) == len(set(ids))
    # Transitions of one kind alternate firing/resolved, starting with firing.
    for kind in (LOW, EXHAUSTED):
        statuses = [t.status for t in emitted if t.kind == kind]
        assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + (
            ["firing"] if len(statuses) % 2 else []
        )
