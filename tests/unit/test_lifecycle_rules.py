"""The lifecycle rules on hand-made snapshots: hysteresis, exactly-once and replay safety.

No Redis and no HTTP: snapshots go straight into the evaluator, as the detector feeds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from config.ledger import Credit, LadderProgram
from config.settings import DetectSettings
from service.detect import center
from service.detect.evaluate import evaluate
from service.detect.facts import AccountSnapshot
from service.detect.figures import spend_days
from service.detect.ledger import AccountLedger
from service.detect.reconcile import settled_day
from service.detect.state import AccountState, CenterState
from tests.support.snapshots import day_spend
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import (
    AccountBalanceSnapshot,
    BalanceInfo,
    CreditTransactionSnapshot,
    DailySpendSnapshot,
    SourceStatusSnapshot,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
D = Decimal
ADV = "71"
SETTINGS = DetectSettings()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def balance(
    hours: float, grant: str, *, frozen: str = "0", cash: str = "1000"
) -> AccountBalanceSnapshot:
    valid = D(grant) - D(frozen)
    return AccountBalanceSnapshot(
        bc_id="70",
        advertiser_id=ADV,
        advertiser_name="Shop",
        currency="USD",
        balances=BalanceInfo(
            grant_balance=D(grant),
            valid_grant_balance=valid,
            frozen_grant_balance=D(frozen),
            cash_balance=D(cash),
            valid_cash_balance=D(cash),
        ),
        observed_at=at(hours),
    )


def spend(hours: float, day: date, *, cash: str = "0", grant: str = "0") -> DailySpendSnapshot:
    return day_spend(ADV, day, at(hours), cash=cash, grant=grant)


def issued(hours: float, transaction_id: str, amount: str) -> CreditTransactionSnapshot:
    return CreditTransactionSnapshot(
        bc_id="70",
        advertiser_id=ADV,
        transaction_id=transaction_id,
        transaction_type="PROMOTION_ISSUED",
        amount=D(amount),
        currency="USD",
        create_time=at(hours),
        observed_at=at(hours),
    )


def run(
    snapshots: list[AccountSnapshot],
    ledger: AccountLedger | None = None,
    detect: DetectSettings = SETTINGS,
) -> tuple[AccountState | None, list[AlertTransition]]:
    state: AccountState | None = None
    emitted: list[AlertTransition] = []
    for snapshot in snapshots:
        result = evaluate(state, snapshot, ledger or AccountLedger(), detect)
        if result is not None:
            state = result.state
            emitted.extend(result.transitions)
    return state, emitted


def of(emitted: list[AlertTransition], kind: str) -> list[str]:
    return [t.status for t in emitted if t.kind == kind]


# --- hysteresis: a value jittering at a line fires once -----------------------------------------


def steady_days(*, grant: str = "0", cash: str = "0") -> list[AccountSnapshot]:
    """Three complete days of spend before T0: the daily burn is exactly their amount."""
    return [spend(0, T0.date() - timedelta(days=k), grant=grant, cash=cash) for k in (1, 2, 3)]


def daily(
    hours: float, snapshot: AccountSnapshot, *, grant: str = "0", cash: str = "0"
) -> list[AccountSnapshot]:
    """Yesterday's figure (the same steady amount), then ``snapshot``."""
    yesterday = at(hours).date() - timedelta(days=1)
    return [spend(hours, yesterday, grant=grant, cash=cash), snapshot]


def test_depletion_forecast_jitter_at_the_horizon_fires_once() -> None:
    # 240/day. 720 lasts exactly 72 h, the horizon; resolving needs more than 79.2 h (792).
    # Balances 25 h apart, so only the daily figures set the rate.
    grants = ["700", "740", "715", "790", "705"]
    snapshots = steady_days(grant="240")
    for k, grant in enumerate(grants):
        snapshots += daily(25 * k, balance(25 * k, grant), grant="240")
    _, emitted = run(snapshots)
    assert of(emitted, "credit.depletion_forecast") == ["firing"]
    hours = 25 * len(grants)
    _, emitted = run([*snapshots, *daily(hours, balance(hours, "800"), grant="240")])
    assert of(emitted, "credit.depletion_forecast") == ["firing", "resolved"]


def test_frozen_fires_once_while_the_hold_changes_and_resolves_at_zero() -> None:
    snapshots: list[AccountSnapshot] = [
        balance(0, "1000"),
        balance(1, "1000", frozen="100"),
        balance(2, "1000", frozen="300"),  # rose: same hold, no second notice
        balance(3, "1000", frozen="50"),
        balance(4, "1000", frozen="0"),
        balance(5, "1000", frozen="0"),
    ]
    _, emitted = run(snapshots)
    assert of(emitted, "credit.frozen") == ["firing", "resolved"]
    firing = next(t for t in emitted if t.kind == "credit.frozen")
    assert firing.values["frozen_grant_balance"] == "100.00"
    assert "appeal" in firing.summary


def test_cash_runway_jitter_fires_once() -> None:
    # Credit gone; 240/day from cash. 3 days = 720 is the line; resolving needs 792.
    snapshots = [*steady_days(cash="240"), balance(0, "10", cash="730")]
    cash = ["719", "760", "715", "790", "709"]
    for k, amount in enumerate(cash, start=1):
        snapshots += daily(25 * k, balance(25 * k, "0", cash=amount), cash="240")
    _, emitted = run(snapshots)
    assert of(emitted, "cash.low_after_credit") == ["firing"]


def test_a_shared_payment_portfolio_is_not_one_accounts_cash_runway() -> None:
    # As in the jitter test the runway is short, but the cash is a SHARED portfolio's.
    shared = {"payment_portfolio_id": "73", "payment_portfolio_type": "SHARED"}
    snapshots: list[AccountSnapshot] = [
        *steady_days(cash="240"),
        balance(0, "10", cash="730").model_copy(update=shared),
    ]
    for k in range(1, 4):
        low = balance(25 * k, "0", cash="700").model_copy(update=shared)
        snapshots += daily(25 * k, low, cash="240")
    state, emitted = run(snapshots)
    assert of(emitted, "credit.exhausted") == ["firing"]
    assert of(emitted, "cash.low_after_credit") == []
    assert state is not None and state.cash_shared
    # Once the account pays from its own cash again, the same figures do fire.
    own = daily(110, balance(110, "0", cash="700"), cash="240")
    _, emitted = run([*snapshots, *own])
    assert of(emitted, "cash.low_after_credit") == ["firing"]


def test_tiktoks_balance_reminder_is_in_the_credit_alert_values() -> None:
    flagged = {"balance_reminder": True}
    _, emitted = run(
        [
            balance(0, "100").model_copy(update=flagged),
            balance(1, "10").model_copy(update=flagged),
            balance(2, "0").model_copy(update={"balance_reminder": None}),
        ]
    )
    low = next(t for t in emitted if t.kind == "credit.low")
    exhausted = next(t for t in emitted if t.kind == "credit.exhausted")
    assert low.values["balance_reminder"] == "true"
    assert exhausted.values["balance_reminder"] == ""  # not reported in that reply


def test_an_account_that_never_had_credit_gets_no_cash_alert() -> None:
    _, emitted = run([balance(h, "0", cash=str(100 - h * 10)) for h in range(5)])
    assert emitted == []


PROGRAM = LadderProgram.model_validate(
    {
        "id": "L",
        "advertiser_id": ADV,
        "currency": "USD",
        "window_start": T0,
        "window_end": T0 + timedelta(days=10),
        "tiers": [{"threshold": "1000", "reward": "100"}],
    }
)


def test_ladder_at_risk_jitter_fires_once() -> None:
    # 1000 to reach in 10 days: 100/day needed at the start. Cash spend hovers around it.
    ledger = AccountLedger(programs=(PROGRAM,))
    snapshots: list[AccountSnapshot] = []
    for day, amount in enumerate(["95", "105", "96", "104", "97"]):
        when = T0.date() + timedelta(days=day)
        snapshots.append(spend(24 * day + 23, when, cash=amount))
    _, emitted = run(snapshots, ledger)
    assert of(emitted, "ladder.at_risk") == ["firing"]
    # Credit-funded spend does not qualify.
    state, _ = run([spend(1, T0.date(), cash="10", grant="500")], ledger)
    assert state is not None


CREDIT_100 = Credit.model_validate(
    {
        "id": "c",
        "advertiser_id": ADV,
        "type": "free",
        "amount": "100",
        "currency": "USD",
        "valid_from": T0,
        "valid_to": T0 + timedelta(days=30),
    }
)


def polled_days(hours: int, grant_spent: Callable[[date, int], str]) -> list[AccountSnapshot]:
    """The cost poller's figures at ``hours``: the last 4 UTC days, as read then."""
    today = at(hours).date()
    return [
        spend(hours, day, grant=grant_spent(day, hours))
        for day in (today - timedelta(days=k) for k in range(4))
        if day >= T0.date()
    ]


def test_reconcile_reports_only_settled_days_after_the_mismatch_persisted() -> None:
    ledger = AccountLedger(credits=(CREDIT_100,))
    snapshots: list[AccountSnapshot] = []
    for hour in range(0, 24 * 5, 2):
        snapshots.append(balance(hour, "150"))  # 50 more than declared, and nothing spent
        snapshots += polled_days(hour + 1, lambda day, hours: "0")
    _, emitted = run(snapshots, ledger)
    firing = [t for t in emitted if t.kind == "reconcile.mismatch"]
    assert [t.status for t in firing] == ["firing"]
    # Nov 1 settles 48 h after it ended (Nov 4 00:00), Nov 2 a day later: two settled days
    # of mismatch, 24 h apart.
    assert firing[0].observed_at >= at(96)
    assert firing[0].values["mismatch_since"] == at(24).isoformat()
    assert firing[0].values["difference"] == "50.00"


def test_spend_figures_that_lag_by_a_day_and_a_half_raise_no_mismatch() -> None:
    # 100 declared and spent at 10/day from T0: the balance is right all along, but a day's
    # figure reads 0 until 36 h after the day ended (voucher spend lags 24-48 h).
    ledger = AccountLedger(credits=(CREDIT_100,))

    def lagging(day: date, hours: int) -> str:
        ended = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return "10" if at(hours) >= ended + timedelta(hours=36) else "0"

    snapshots: list[AccountSnapshot] = []
    for hour in range(0, 24 * 7, 2):
        snapshots.append(balance(hour, str((D(100) - D(10) * hour / 24).quantize(D("0.01")))))
        snapshots += polled_days(hour + 1, lagging)
    state, emitted = run(snapshots, ledger)
    assert of(emitted, "reconcile.mismatch") == []
    # The comparison did run, on settled days.
    assert state is not None and settled_day(state, timedelta(hours=48)) is not None
    # Compared on the raw, still-lagging figures it would have disagreed by 10-20 all along.
    lax = SETTINGS.model_copy(update={"reconcile_lag_h": 0})
    _, emitted = run(snapshots, ledger, lax)
    assert of(emitted, "reconcile.mismatch") == ["firing"]


def test_reconcile_without_lag_compares_the_balance_at_the_read_of_todays_figure() -> None:
    # 5/h of credit spent from T0, 50 undeclared on top of the declared 100. A sweep reads
    # today, then yesterday; when the API's clock moves on between the two reads, yesterday's
    # figure is the newer one, but today's spend is as of its own read. Compared at the newer
    # read, the balance would be 10 ahead of the spend.
    ledger = AccountLedger(credits=(CREDIT_100,))
    lax = SETTINGS.model_copy(update={"reconcile_lag_h": 0, "reconcile_after_h": 6})
    snapshots: list[AccountSnapshot] = [balance(0, "150")]
    for hour in range(0, 20, 2):
        snapshots.append(spend(hour, T0.date(), grant=str(5 * hour)))
        snapshots.append(spend(hour + 2, T0.date() - timedelta(days=1)))
        snapshots.append(balance(hour + 2, str(150 - 5 * (hour + 2))))
    _, emitted = run(snapshots, ledger, lax)
    firing = [t for t in emitted if t.kind == "reconcile.mismatch"]
    assert [t.status for t in firing] == ["firing"]
    assert firing[0].values["difference"] == "50.00"


# --- exactly once ---------------------------------------------------------------------------------


def test_a_transaction_is_processed_once_also_in_overlapping_windows() -> None:
    first = issued(1, "tx-1", "250")
    snapshots: list[AccountSnapshot] = [balance(0, "0"), first, balance(2, "250")]
    # The next poll's window overlaps: the same transaction, seen later.
    again = first.model_copy(update={"observed_at": at(3)})
    state, emitted = run([*snapshots, again])
    assert of(emitted, "credit.issued") == ["firing"]
    assert state is not None
    assert list(state.transactions) == ["tx-1"]
    assert state.transactions["tx-1"].credit_id is None  # undeclared: in the ledger anyway


def test_source_auth_failed_fires_and_resolves_per_business_center() -> None:
    def status(hours: float, source: str, ok: bool) -> SourceStatusSnapshot:
        return SourceStatusSnapshot(
            bc_id="70",
            source=source,
            status="ok" if ok else "auth_failed",
            code=None if ok else 40105,
            observed_at=at(hours),
        )

    state: CenterState | None = None
    emitted: list[AlertTransition] = []
    for snapshot in [
        status(0, "bc_cost", ok=False),
        status(0, "advertiser_balance", ok=False),
        status(0, "bc_cost", ok=False),  # redelivered
        status(0, "bc_cost", ok=True),  # the next poll, same second: it recovered
        status(1, "advertiser_balance", ok=True),
        status(0.5, "advertiser_balance", ok=False),  # late and older: ignored
    ]:
        result = center.evaluate(state, snapshot)
        if result is not None:
            state = result.state
            emitted.extend(result.transitions)
    assert [(t.kind, t.status) for t in emitted] == [
        ("source.auth_failed", "firing"),
        ("source.auth_failed", "resolved"),
    ]
    assert emitted[1].observed_at == at(1)


# --- properties: replay and reordering, revised spend ---------------------------------------------

DAYS = [T0.date() + timedelta(days=k) for k in range(4)]

snapshot_strategy = st.one_of(
    st.builds(
        lambda h, g, f: balance(h, str(g), frozen=str(min(f, g))),
        st.integers(0, 96),
        st.integers(0, 600),
        st.sampled_from([0, 0, 0, 50]),
    ),
    st.builds(
        lambda h, d, c, g: spend(h, DAYS[d], cash=str(c), grant=str(g)),
        st.integers(0, 96),
        st.integers(0, 3),
        st.integers(0, 300),
        st.integers(0, 300),
    ),
    st.builds(
        lambda h, n, a: issued(h, f"tx-{n}", str(a)),
        st.integers(0, 96),
        st.integers(0, 4),
        st.sampled_from([100, 250]),
    ),
)

LEDGER = AccountLedger(
    credits=(
        Credit.model_validate(
            {
                "id": "soon",
                "advertiser_id": ADV,
                "type": "free",
                "amount": "250",
                "currency": "USD",
                "valid_from": T0,
                "valid_to": T0 + timedelta(days=2),
            }
        ),
        Credit.model_validate(
            {
                "id": "deal",
                "advertiser_id": ADV,
                "type": "discount",
                "currency": "USD",
                "discount": {"percent": "10", "cap": "30"},
                "valid_from": T0,
                "valid_to": T0 + timedelta(days=3),
            }
        ),
    ),
    programs=(PROGRAM,),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(snapshot_strategy, min_size=1, max_size=30), st.data())
def test_replaying_or_reordering_never_notifies_an_episode_twice(
    snapshots: list[AccountSnapshot], data: st.DataObject
) -> None:
    """Deliver the snapshots in any order, with any of them repeated: every alert episode
    gets at most one firing and one resolved transition, and no transition comes twice."""
    delivered = data.draw(st.permutations(snapshots))
    repeats = data.draw(st.lists(st.sampled_from(snapshots), max_size=10))
    stream = list(delivered)
    for repeat in repeats:
        stream.insert(data.draw(st.integers(0, len(stream))), repeat)
    _, emitted = run(stream, LEDGER)
    per_transition = Counter(t.transition_id for t in emitted)
    assert all(count == 1 for count in per_transition.values()), [
        (t.kind, t.status, t.starts_at, t.observed_at) for t in emitted
    ]
    per_alert = Counter(t.alert_id for t in emitted)
    assert all(count <= 2 for count in per_alert.values())
    for alert_id in per_alert:
        statuses = [t.status for t in emitted if t.alert_id == alert_id]
        assert statuses in (["firing"], ["firing", "resolved"])


revision = st.tuples(st.integers(0, 200), st.integers(0, 3), st.integers(0, 500))


@settings(max_examples=200, deadline=None)
@given(st.lists(revision, min_size=1, max_size=25, unique_by=lambda r: (r[0], r[1])), st.data())
def test_revised_spend_replaces_and_never_double_counts(
    revisions: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    """Each (day, observation time) carries a figure; in whatever order they arrive, the
    state holds exactly the newest figure of each day."""
    snapshots = [spend(h, DAYS[d], grant=str(amount)) for h, d, amount in revisions]
    order = data.draw(st.permutations(snapshots))
    state, _ = run(list(order))
    assert state is not None
    newest: dict[date, tuple[int, int]] = {}
    for hours, day, amount in revisions:
        if DAYS[day] not in newest or hours > newest[DAYS[day]][0]:
            newest[DAYS[day]] = (hours, amount)
    expected = {day: D(amount) for day, (_, amount) in newest.items()}
    assert spend_days(state, "grant") == expected
    assert sum(spend_days(state, "grant").values()) == sum(expected.values())
