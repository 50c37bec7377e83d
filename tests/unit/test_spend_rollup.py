"""Old spend days rolled into spans: every rule that reads spend gets what it got day by day.

No Redis: spend snapshots go through ``facts.record`` twice, once with the detectors' spend
window (days older than it are rolled up) and once with a window longer than the retention
(every day kept as it is), and what allocation, the ladder, the discount cap and the burn
rate read from the two states is compared, to the cent.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from config.ledger import Credit, LadderProgram
from config.settings import DetectSettings
from service.detect import burn, rollup
from service.detect.discount import discount_used
from service.detect.facts import SPEND_RETENTION, AccountSnapshot, record
from service.detect.figures import read_times, spend_days
from service.detect.ladder import qualifying_spend
from service.detect.ledger import AccountLedger, allocate, ledger_entries
from service.detect.state import AccountState, encode_state
from tests.support.snapshots import day_spend
from workers.contract.snapshots import (
    PROMOTION_ISSUED,
    CreditTransactionSnapshot,
    DailySpendSnapshot,
)

# Far from any real today: nothing here reads the wall clock.
T0 = datetime(2031, 3, 1, tzinfo=UTC)
ADV = "71"
D = Decimal
SETTINGS = DetectSettings()
EVERY_DAY = SPEND_RETENTION + timedelta(days=30)


def spend(
    source: Literal["bc_cost", "report"], day: date, observed_at: datetime, cash: str, grant: str
) -> DailySpendSnapshot:
    return day_spend(ADV, day, observed_at, source=source, cash=cash, grant=grant)


def credit(credit_id: str, start: datetime, end: datetime, amount: str, **extra: object) -> Credit:
    return Credit.model_validate(
        {
            "id": credit_id,
            "advertiser_id": ADV,
            "type": "free",
            "amount": amount,
            "currency": "USD",
            "valid_from": start,
            "valid_to": end,
            **extra,
        }
    )


LEDGER = AccountLedger(
    credits=(
        # Starts and ends mid-day, inside what is rolled up.
        credit("early", T0 + timedelta(days=3, hours=14), T0 + timedelta(days=40, hours=9), "900"),
        credit("long", T0 + timedelta(days=10), T0 + timedelta(days=200), "5000"),
        credit(
            "disc",
            T0 + timedelta(days=20),
            T0 + timedelta(days=50),
            "300",
            type="discount",
            discount={"percent": "10", "cap": "300"},
        ),
    ),
    programs=(
        LadderProgram.model_validate(
            {
                "id": "L",
                "advertiser_id": ADV,
                "currency": "USD",
                "window_start": T0 + timedelta(days=30, hours=6),
                "window_end": T0 + timedelta(days=61),
                "tiers": [{"threshold": "1000", "reward": "100"}],
            }
        ),
    ),
)
ISSUED = CreditTransactionSnapshot(
    bc_id="70",
    advertiser_id=ADV,
    transaction_id="tx-undeclared",
    transaction_type=PROMOTION_ISSUED,
    amount=D("250"),
    create_time=T0 + timedelta(days=55, hours=2),
    currency="USD",
    observed_at=T0 + timedelta(days=55, hours=3),
)


def fold(snapshots: list[AccountSnapshot], window: timedelta) -> AccountState:
    state: AccountState | None = None
    for snapshot in snapshots:
        state = record(state, snapshot, LEDGER, window) or state
    assert state is not None
    return state


def amounts(rng: random.Random) -> tuple[str, str]:
    # Some days without any spend: they must not shift anything either.
    if rng.random() < 0.1:
        return "0", "0"
    return f"{rng.randint(0, 9000) / 100:.2f}", f"{rng.randint(0, 9000) / 100:.2f}"


def history(seed: int) -> list[AccountSnapshot]:
    """A backfill of 90 days from both sources in a shuffled order, then daily polls that
    re-read (and revise) the last 3 days, after a credit transaction (all within
    the retention, which drops the oldest days either way)."""
    rng = random.Random(seed)
    start = T0 + timedelta(days=90)
    backfill: list[AccountSnapshot] = []
    for source in ("bc_cost", "report"):
        for back in range(1, 91):
            backfill.append(
                spend(source, (start - timedelta(days=back)).date(), start, *amounts(rng))
            )
    rng.shuffle(backfill)
    polls: list[AccountSnapshot] = []
    for poll in range(1, 25):
        read_at = start + timedelta(days=poll, hours=rng.randint(0, 20))
        for back in range(3):
            day = (read_at - timedelta(days=back)).date()
            polls.append(spend("bc_cost", day, read_at, *amounts(rng)))
    return [ISSUED, *backfill, *polls]


def reads(state: AccountState) -> dict[str, object]:
    """What the rules and the status page read of spend."""
    entries = ledger_entries(LEDGER, state.transactions)
    grant = spend_days(state, "grant")
    today = state.now.astimezone(UTC).date() if state.now else T0.date()
    return {
        "allocated": allocate(entries, grant, read_times(state)),
        "ladder": qualifying_spend(state, LEDGER.programs[0]),
        "discount": discount_used(LEDGER.credits[2], spend_days(state, "total")),
        "burn": burn.daily_average(grant, today, 7),
        "recent": {day: grant[day] for day in sorted(grant)[-14:]},
        "recent_reads": {d: t for d, t in read_times(state).items() if d >= today - timedelta(14)},
    }


def test_rolled_up_spend_reads_the_same_as_every_day_kept() -> None:
    for seed in range(6):
        snapshots = history(seed)
        rolled = fold(snapshots, rollup.window(SETTINGS))
        kept = fold(snapshots, EVERY_DAY)
        assert not kept.rolled.get("bc_cost")
        assert rolled.rolled.get("bc_cost"), "nothing was rolled up"
        assert reads(rolled) == reads(kept), f"seed {seed}"
        assert len(encode_state(rolled)) < len(encode_state(kept)) / 2


def test_spans_break_on_every_day_a_credit_or_window_changes() -> None:
    rolled = fold(history(0), rollup.window(SETTINGS))
    cuts = rollup.cut_days(LEDGER, rolled.transactions)
    for first, span in rolled.rolled["bc_cost"].items():
        if span.last > first:
            assert not [cut for cut in cuts if first <= cut <= span.last]


def test_a_revision_inside_the_window_replaces_the_day() -> None:
    day = (T0 + timedelta(days=100)).date()
    first = spend("bc_cost", day, T0 + timedelta(days=100, hours=23), "5.00", "40.00")
    revised = spend("bc_cost", day, T0 + timedelta(days=101, hours=8), "6.00", "44.50")
    state = fold([first, revised], rollup.window(SETTINGS))
    assert spend_days(state, "grant") == {day: D("44.50")}
    assert spend_days(state, "cash") == {day: D("6.00")}
    # An older read of the same day changes nothing.
    assert record(state, first, LEDGER, rollup.window(SETTINGS)) is None


def test_a_day_already_rolled_up_is_never_counted_again() -> None:
    now = T0 + timedelta(days=140)
    old = (now - timedelta(days=40)).date()  # no credit or ladder date near it
    figures: list[AccountSnapshot] = [
        spend("bc_cost", old - timedelta(days=k), now, "1.00", "10.00") for k in range(3)
    ]
    state = fold(figures, rollup.window(SETTINGS))
    total = sum(spend_days(state, "grant").values(), D(0))
    assert total == D("30.00")
    again = spend("bc_cost", old - timedelta(days=1), now + timedelta(days=1), "9.00", "99.00")
    assert record(state, again, LEDGER, rollup.window(SETTINGS)) is None
    assert len(state.rolled["bc_cost"]) == 1  # three adjacent days, no cut: one span
