"""Burn-rate, forecast and ledger math against hand-computed figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest.mock import patch

from msgspec.structs import replace

from config.ledger import Credit
from config.settings import DetectSettings
from service.detect.burn import daily_average, intraday, rate
from service.detect.cash import runway_days
from service.detect.discount import discount_used
from service.detect.facts import MIDNIGHTS_KEPT, midnights, thin
from service.detect.figures import grant_burn, remembered_burns
from service.detect.forecast import exhaustion_at
from service.detect.ledger import AccountLedger, Entry, allocate, forfeits, unused
from service.detect.reconcile import grant_at
from service.detect.state import AccountState, BalancePoint

T0 = datetime(2026, 11, 10, tzinfo=UTC)
D = Decimal


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_daily_average_uses_complete_days_and_skips_days_before_spend_began() -> None:
    today = date(2026, 11, 10)
    daily = {
        date(2026, 11, 6): D(0),  # before the account spent anything: not averaged in
        date(2026, 11, 7): D(90),
        date(2026, 11, 8): D(120),
        date(2026, 11, 9): D(150),
        today: D(999),  # today is not complete
    }
    # Last 3 complete days: (90 + 120 + 150) / 3 = 120.
    assert daily_average(daily, today, 3) == (D(120), 3)
    # Last 2: (120 + 150) / 2 = 135.
    assert daily_average(daily, today, 2) == (D(135), 2)
    assert daily_average({today: D(5)}, today, 3) is None


def test_intraday_rate_counts_drops_not_top_ups_and_skips_expiries() -> None:
    points = [(at(0), D(500)), (at(6), D(440)), (at(12), D(900)), (at(18), D(840))]
    # Drops 60 + 60 over 18 h; the rise is a top-up. 120 / 0.75 day = 160/day; span 0.75.
    assert intraday(points) == (D(160), D("0.75"))
    # An expiry at 15 h: the 12-18 h interval is left out. 60 over 12 h = 120/day, span 0.5.
    assert intraday(points, skip=[at(15)]) == (D(120), D("0.5"))
    assert intraday(points[:1]) is None


def test_rate_blends_days_and_intraday_by_the_time_each_covers() -> None:
    today = T0.date()
    daily = {today - timedelta(days=k): D(240) for k in (1, 2, 3)}
    points = [(at(0), D(1000)), (at(12), D(820))]  # 180 in 12 h = 360/day, weight 0.5
    # (240 * 3 + 360 * 0.5) / 3.5 = 900 / 3.5 = 257.142857...
    assert rate(daily, points, today, 3) == D(900) / D("3.5")
    assert rate({}, points, today, 3) == D(360)
    assert rate(daily, [], today, 3) == D(240)
    assert rate({}, [], today, 3) is None


def test_exhaustion_and_runway() -> None:
    # 450 at 240/day lasts 1.875 days = 45 h.
    assert exhaustion_at(D(450), D(240), T0) == at(45)
    assert exhaustion_at(D(450), D(0), T0) is None
    # 500 cash at 240/day: 2.0833 days.
    runway = runway_days(D(500), D(240))
    assert runway is not None and runway.quantize(D("0.0001")) == D("2.0833")
    assert runway_days(D(500), None) is None


def credit_entry(credit_id: str, amount: str, valid_to_h: float | None, from_h: float = 0) -> Entry:
    return Entry(
        id=credit_id,
        amount=D(amount),
        valid_from=at(from_h),
        valid_to=None if valid_to_h is None else at(valid_to_h),
    )


def test_allocation_is_earliest_expiry_first_and_capped() -> None:
    early = credit_entry("early", "100", 24 * 5)
    late = credit_entry("late", "300", 24 * 20)
    undeclared = credit_entry("undeclared-1", "50", None)
    spend = {T0.date(): D(80), (T0 + timedelta(days=1)).date(): D(70)}
    used = allocate([late, undeclared, early], spend)
    # Day 1: 80 to early. Day 2: 20 more to early (full at 100), 50 to late.
    assert used == {"early": D(100), "late": D(50), "undeclared-1": D(0)}


def test_a_credit_expiring_mid_day_takes_only_its_share_of_that_day() -> None:
    expiring = credit_entry("expiring", "300", 16)  # expires at 16:00 on day 1
    other = credit_entry("other", "500", 24 * 30)
    spend = {T0.date(): D(72)}  # 3/h all day
    used = allocate([expiring, other], spend)
    assert used == {"expiring": D(48), "other": D(24)}
    # A figure read at 12:00 covers 12 h, all of them while `expiring` was live.
    used = allocate([expiring, other], {T0.date(): D(36)}, {T0.date(): at(12)})
    assert used == {"expiring": D(36), "other": D(0)}


def test_unused_is_reconciled_against_the_grant_balance_earliest_expiry_first() -> None:
    early = credit_entry("early", "100", 48)
    late = credit_entry("late", "300", 24 * 20)
    used = {"early": D(10), "late": D(0)}
    # The ledger says 90 + 300 = 390 but the balance is 340: the 50 excess comes off `early`.
    assert unused([early, late], used, grant_balance=D(340), at=at(1)) == {
        "early": D(40),
        "late": D(300),
    }
    # A balance above the ledger (an undeclared credit, lag) changes no declared figure.
    assert unused([early, late], used, grant_balance=D(500), at=at(1)) == {
        "early": D(90),
        "late": D(300),
    }
    # Expired credits are not live.
    assert unused([early, late], used, grant_balance=D(500), at=at(49)) == {"late": D(300)}


def test_projected_forfeits_follow_the_order_of_use() -> None:
    early = credit_entry("early", "0", 24)  # expires in 1 day
    late = credit_entry("late", "0", 24 * 3)  # expires in 3 days
    left = {"early": D(150), "late": D(100)}
    # 100/day: `early` can spend 100 before it expires and forfeits 50; `late` then gets
    # 2 more days = 200 >= 100, forfeits nothing.
    assert forfeits([early, late], left, burn_per_day=D(100), now=T0) == {
        "early": D(50),
        "late": D(0),
    }
    # 30/day: early spends 30 (forfeits 120); late gets 2 days * 30 = 60 (forfeits 40).
    assert forfeits([early, late], left, burn_per_day=D(30), now=T0) == {
        "early": D(120),
        "late": D(40),
    }
    assert forfeits([early, late], left, burn_per_day=None, now=T0) == left


def test_grant_is_interpolated_between_observations() -> None:
    history = [
        BalancePoint(at=at(0), grant=D(400), cash=D(0)),
        BalancePoint(at=at(4), grant=D(360), cash=D(0)),
    ]
    assert grant_at(history, at(1)) == D(390)
    assert grant_at(history, at(4)) == D(360)
    assert grant_at(history, at(5)) is None


def test_the_grant_at_each_midnight_is_interpolated_between_observations() -> None:
    # T0 is a midnight; 400 at 20:00 the day before, 360 at 04:00: 8 h, 5 per hour.
    before = BalancePoint(at=at(-4), grant=D(400), cash=D(0))
    after = BalancePoint(at=at(4), grant=D(360), cash=D(0))
    day_before = T0.date() - timedelta(days=1)
    assert midnights({}, before, after) == {day_before: D(380)}
    # Within one day nothing is added; the first point has nothing to interpolate from.
    assert midnights({}, after, BalancePoint(at=at(5), grant=D(355), cash=D(0))) == {}
    assert midnights({}, None, after) == {}
    # A point exactly at midnight is that midnight's balance.
    assert midnights({}, before, BalancePoint(at=T0, grant=D(390), cash=D(0))) == {
        day_before: D(390)
    }
    # A silence of three weeks: each midnight on the way, only the newest kept.
    late = BalancePoint(at=at(21 * 24 + 1), grant=D(0), cash=D(0))
    marks = midnights({}, after, late)
    assert len(marks) == MIDNIGHTS_KEPT
    assert max(marks) == late.at.date() - timedelta(days=1)


def test_discount_used_is_percent_of_spend_on_valid_days_capped() -> None:
    credit = Credit.model_validate(
        {
            "id": "d",
            "advertiser_id": "71",
            "type": "discount",
            "currency": "USD",
            "discount": {"percent": "10", "cap": "100"},
            "valid_from": T0,
            "valid_to": T0 + timedelta(days=3),
        }
    )
    assert credit.amount == D(100)
    days = {T0.date() - timedelta(days=1): D(5000)}  # before it was valid
    days |= {T0.date(): D(480), T0.date() + timedelta(days=1): D(320)}
    assert discount_used(credit, days) == D(80)
    days[T0.date() + timedelta(days=2)] = D(480)
    assert discount_used(credit, days) == D(100)


def test_a_day_of_history_is_thinned_to_hourly_points_without_changing_a_steady_burn() -> None:
    # 288 polls 5 minutes apart, 0.25 of credit spent per poll: 72 per day.
    points = [
        BalancePoint(at=at(i / 12), grant=D(1000) - D("0.25") * i, cash=D(0)) for i in range(288)
    ]
    now = points[-1].at
    kept = thin(points, now=now)
    # The last hour as observed (13 points from now - 1 h), then one point per older hour.
    recent = [p for p in kept if p.at >= now - timedelta(hours=1)]
    assert len(recent) == 13
    assert len(kept) - len(recent) == 23
    assert all(p in points for p in kept)
    series = [(p.at, p.grant) for p in points]
    thinned = [(p.at, p.grant) for p in kept]
    assert intraday(thinned) == intraday(series)
    full = intraday(series)
    assert full is not None and full[0] == D(72)
    # Thinning again changes nothing.
    assert thin(kept, now=now) == kept


def test_a_batch_remembers_each_states_grant_burn_and_nothing_outlives_it() -> None:
    """Within ``remembered_burns`` a state's burn rate is computed once and asked again for
    free; another state (other balance points) gets its own; after the batch nothing is kept."""
    settings = DetectSettings()
    history = [BalancePoint(at(0), D(1000), D(0)), BalancePoint(at(12), D(820), D(0))]
    state = AccountState(advertiser_id="71", now=at(12), history=history)
    faster = replace(
        state, history=[*history[:1], BalancePoint(at(12), D(640), D(0))], grant=D(640)
    )
    ledger = AccountLedger()
    alone = grant_burn(state, settings, ledger)
    assert alone == D(360)
    with remembered_burns():
        assert grant_burn(state, settings, ledger) == alone
        # The same figures again, in a state copied with other fields changed: remembered.
        copied = replace(state, valid_grant=D(5))
        with patch("service.detect.burn.rate", side_effect=AssertionError("computed again")):
            assert grant_burn(copied, settings, ledger) == alone
        assert grant_burn(faster, settings, ledger) == D(720)
    with patch("service.detect.burn.rate", return_value=D(1)) as computed:
        assert grant_burn(state, settings, ledger) == D(1)  # outside a batch: computed anew
    computed.assert_called_once()
