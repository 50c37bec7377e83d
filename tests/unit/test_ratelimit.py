"""The request budget on fake time: the per-second, per-minute and per-day guarantees,
throughput, FIFO order, cancellation, and per-endpoint budgets of one app."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from config.settings import TikTokSettings
from tests.support.fake_time import FakeMonotonic
from workers.api_budget import ApiBudget, RateBudget, RateLimits, on_the_wire


class FakeClock(FakeMonotonic):
    """Starts at 1000 s; the budget never sleeps for nothing (that would be a busy loop)."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        await super().sleep(seconds)


def max_in_window(times: list[float], window: float) -> int:
    """The largest number of times falling in any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_concurrently(budget: RateBudget, clock: FakeClock, n: int) -> list[tuple[int, float]]:
    """Start n acquirers at once; return (task index, grant time) in grant order."""
    grants: list[tuple[int, float]] = []

    async def one(index: int) -> None:
        await budget.acquire()
        grants.append((index, clock.now))

    await asyncio.gather(*(one(i) for i in range(n)))
    return grants


@pytest.mark.parametrize("qps", [1.0, 2.5, 10.0, 20.0])
async def test_no_window_holds_more_than_floor_qps(qps: float) -> None:
    clock = FakeClock()
    budget = RateBudget(RateLimits(qps), clock=clock, sleep=clock.sleep)
    grants = await run_concurrently(budget, clock, 60)
    times = [t for _, t in grants]
    assert len(times) == 60
    assert max_in_window(times, 1.0) <= math.floor(qps)
    # Also with the margin counted: each grant is at least 1 s + margin after the one
    # floor(qps) places before it.
    burst = math.floor(qps)
    ordered = sorted(times)
    for earlier, later in zip(ordered, ordered[burst:], strict=False):
        assert later - earlier >= 1.0 + 0.02 - 1e-9


async def test_throughput_reaches_qps() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(10), clock=clock, sleep=clock.sleep)
    grants = await run_concurrently(budget, clock, 100)
    elapsed = max(t for _, t in grants)
    # 10 at once, then 9 more windows of 1.02 s: about 9.2 s, not 20.
    assert 9.0 <= elapsed <= 10.0
    assert budget.granted == 100


async def test_waiters_are_granted_in_fifo_order() -> None:
    clock = FakeClock()
    budget = RateBudget(RateLimits(3), clock=clock, sleep=clock.sleep)
    grants = await run_concurrently(budget, clock, 20)
    assert [index for index, _ in grants] == list(range(20))
    times = [t for _, t in grants]
    assert times == sorted(times)


async def test_fractional_qps_spaces_grants() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(0.5), margin_s=0.0, clock=clock, sleep=clock.sleep)
    assert (budget.burst, budget.window_s) == (1, 2.0)
    grants = await run_concurrently(budget, clock, 4)
    assert [t for _, t in grants] == pytest.approx([0.0, 2.0, 4.0, 6.0])


async def test_no_wait_under_the_budget_and_waits_are_counted() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(2), margin_s=0.0, clock=clock, sleep=clock.sleep)
    assert await budget.acquire() == 0.0
    assert await budget.acquire() == 0.0
    assert clock.slept == []
    clock.now = 0.25
    waited = await budget.acquire()
    assert waited == pytest.approx(0.75)
    assert clock.now == pytest.approx(1.0)
    assert budget.total_wait_s == pytest.approx(0.75)


async def test_grants_free_up_as_time_passes() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(2), clock=clock, sleep=clock.sleep)
    await budget.acquire()
    await budget.acquire()
    clock.now = 5.0
    assert await budget.acquire() == 0.0
    assert await budget.acquire() == 0.0


async def test_total_wait_sums_over_concurrent_callers() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(1), margin_s=0.0, clock=clock, sleep=clock.sleep)
    waits = await asyncio.gather(*(budget.acquire() for _ in range(3)))
    assert waits == pytest.approx([0.0, 1.0, 2.0])
    assert budget.total_wait_s == pytest.approx(3.0)


async def test_cancelled_waiter_uses_no_grant_and_blocks_nobody() -> None:
    clock = FakeClock(start=0.0)
    parked = asyncio.Event()

    async def parking_sleep(seconds: float) -> None:
        parked.set()
        await asyncio.Event().wait()  # never returns: only cancellation gets out

    budget = RateBudget(RateLimits(1), margin_s=0.0, clock=clock, sleep=parking_sleep)
    await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await parked.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.granted == 1
    clock.now = 1.0
    assert await asyncio.wait_for(budget.acquire(), timeout=1) == 0.0
    assert budget.granted == 2


async def test_early_wakeups_are_slept_again() -> None:
    clock = FakeClock(start=0.0)

    slept: list[float] = []

    async def early_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds if len(slept) > 1 else seconds - 0.3  # the first wakes early
        await asyncio.sleep(0)

    budget = RateBudget(RateLimits(1), margin_s=0.0, clock=clock, sleep=early_sleep)
    await budget.acquire()
    await budget.acquire()
    assert slept == pytest.approx([1.0, 0.3])
    assert clock.now == pytest.approx(1.0)


@pytest.mark.parametrize("qps", [0.0, -1.0, math.inf, math.nan])
def test_rejects_bad_qps(qps: float) -> None:
    with pytest.raises(ValueError, match="qps"):
        RateBudget(RateLimits(qps))


def test_rejects_negative_margin() -> None:
    with pytest.raises(ValueError, match="margin_s"):
        RateBudget(RateLimits(1), margin_s=-0.1)


# -- per minute and per day ---------------------------------------------------------------


class FakeWall:
    """UTC wall time that moves with a FakeClock: one fake time in the whole test."""

    def __init__(self, clock: FakeClock, at_clock_start: datetime) -> None:
        self._clock = clock
        self._origin = clock.now
        self._start = at_clock_start

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=self._clock.now - self._origin)


@pytest.mark.parametrize(("qps", "qpm"), [(10.0, 30), (10.0, 600), (2.5, 100), (50.0, 3000)])
async def test_no_minute_holds_more_than_qpm_and_no_second_more_than_qps(
    qps: float, qpm: int
) -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(qps, qpm=qpm), clock=clock, sleep=clock.sleep)
    count = qpm * 2 + 7
    times = [t for _, t in await run_concurrently(budget, clock, count)]
    assert len(times) == count
    assert max_in_window(times, 1.0) <= math.floor(qps)
    assert max_in_window(times, 60.0) <= qpm
    # The margin holds in the minute window too: qpm places apart, 60 s + margin at least.
    ordered = sorted(times)
    for earlier, later in zip(ordered, ordered[qpm:], strict=False):
        assert later - earlier >= 60.0 + 0.02 - 1e-9


async def test_the_minute_limit_binds_when_it_is_below_sixty_seconds_of_qps() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(10, qpm=30), clock=clock, sleep=clock.sleep)
    times = [t for _, t in await run_concurrently(budget, clock, 90)]
    # 30 in the first 3 s (10 a second), then nothing until 60 s have passed since the first.
    assert sorted(times)[29] < 3.0
    assert sorted(times)[30] >= 60.0
    # Three minutes' worth, not the nine seconds the QPS alone would allow.
    assert 120.0 <= max(times) < 124.0


async def test_arrivals_at_random_times_never_exceed_any_window() -> None:
    rng = random.Random(12)
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(5, qpm=40), clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def caller(delays: list[float]) -> None:
        for delay in delays:
            await clock.sleep(delay)
            await budget.acquire()
            times.append(clock.now)

    plans = [[rng.expovariate(1.0) for _ in range(30)] for _ in range(6)]
    await asyncio.gather(*(caller(plan) for plan in plans))
    assert len(times) == 180
    assert max_in_window(times, 1.0) <= 5
    assert max_in_window(times, 60.0) <= 40


async def test_the_day_quota_starts_again_at_midnight_utc() -> None:
    clock = FakeClock(start=0.0)
    # A fixed fake day: the whole test lives on this one clock.
    wall = FakeWall(clock, datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC))
    budget = RateBudget(RateLimits(100, qpd=5), clock=clock, wall=wall, sleep=clock.sleep)
    stamps: list[datetime] = []
    for _ in range(12):
        await budget.acquire()
        stamps.append(wall())
    days = Counter(stamp.date() for stamp in stamps)
    assert days == {date(2026, 3, 1): 5, date(2026, 3, 2): 5, date(2026, 3, 3): 2}
    # The sixth waited for 00:00 UTC, not for a rolling 24 hours.
    assert stamps[5] == datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC)
    assert stamps[4] < datetime(2026, 3, 1, 23, 59, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"qpm": 0}, "qpm"), ({"qpd": -1}, "qpd"), ({"qpm": 1.5}, "qpm")],
)
def test_rejects_bad_minute_and_day_limits(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RateLimits(10, **kwargs)


# -- one app's budget ---------------------------------------------------------------------

COST = "/bc/account/cost/get/"
BALANCE = "/advertiser/balance/get/"
REPORT = "/report/integrated/get/"


async def test_endpoints_share_the_app_budget_unless_they_have_their_own() -> None:
    clock = FakeClock(start=0.0)
    budget = ApiBudget(
        RateLimits(4, qpm=100),
        endpoint_limits={REPORT: RateLimits(1, qpm=100)},
        clock=clock,
        sleep=clock.sleep,
    )
    grants: dict[str, list[float]] = {BALANCE: [], COST: [], REPORT: []}

    async def one(endpoint: str) -> None:
        await budget.acquire(endpoint)
        grants[endpoint].append(clock.now)

    await asyncio.gather(*(one(e) for e in [BALANCE, COST, REPORT] * 12))
    shared = grants[BALANCE] + grants[COST]
    assert max_in_window(shared, 1.0) <= 4  # two endpoints, one budget of 4
    assert max_in_window(grants[REPORT], 1.0) <= 1
    assert budget.granted == 36
    assert budget.budget_for(COST) is budget.budget_for(BALANCE)
    assert budget.budget_for(REPORT) is not budget.budget_for(BALANCE)


def test_the_budget_comes_from_the_tier_or_the_explicit_limits() -> None:
    premium = ApiBudget.from_settings(TikTokSettings(tier="premium"))
    assert premium.limits == RateLimits(30, 1800, 864_000)
    explicit = ApiBudget.from_settings(
        TikTokSettings(tier="premium", qpm=900, endpoint_limits={REPORT: {"qps": 2}})
    )
    assert explicit.limits == RateLimits(30, 900, 864_000)
    assert explicit.budget_for(REPORT).limits == RateLimits(2, 900, 864_000)


async def test_a_grant_sent_late_is_counted_when_it_is_sent() -> None:
    # 8 QPS, a request every 1/8 s, until the event loop stalls for 0.5 s between the eighth
    # grant and its send (a long detector batch in the same process). TikTok counts
    # arrivals: the grants after the stall must keep to 8 in any second of *sends*, which
    # they do not if the late request still counts from its grant. (Times are binary
    # fractions, so that no window edge is a rounding error.)
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(8), margin_s=0.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    resumed = asyncio.Event()

    async def request(*, stalls: bool = False) -> None:
        await budget.acquire()
        if stalls:
            await resumed.wait()
        sent.append(clock.now)
        on_the_wire()

    for n in range(7):
        clock.now = 0.0625 + n / 8
        await asyncio.create_task(request())
    clock.now = 0.9375
    stalled = asyncio.create_task(request(stalls=True))
    await asyncio.sleep(0)  # granted at 0.9375
    clock.now = 1.4375
    resumed.set()
    await stalled
    await asyncio.gather(*(request() for _ in range(24)))
    assert len(sent) == 32
    assert max_in_window(sent, 1.0) <= 8


def test_on_the_wire_without_a_grant_changes_nothing() -> None:
    clock = FakeClock(start=0.0)
    budget = RateBudget(RateLimits(1), clock=clock, sleep=clock.sleep)
    on_the_wire()  # this task took no grant
    assert budget.granted == 0
