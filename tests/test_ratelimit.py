"""QpsBudget on fake time: the sliding-window guarantee, throughput, FIFO order, cancellation."""

from __future__ import annotations

import asyncio
import math

import pytest

from workers.ratelimit import QpsBudget


class FakeClock:
    """Virtual time: ``sleep`` lets other ready tasks run, then advances the clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        await asyncio.sleep(0)
        self.now += seconds


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


async def run_concurrently(budget: QpsBudget, clock: FakeClock, n: int) -> list[tuple[int, float]]:
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
    budget = QpsBudget(qps, clock=clock, sleep=clock.sleep)
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
    budget = QpsBudget(10, clock=clock, sleep=clock.sleep)
    grants = await run_concurrently(budget, clock, 100)
    elapsed = max(t for _, t in grants)
    # 10 at once, then 9 more windows of 1.02 s: about 9.2 s, not 20.
    assert 9.0 <= elapsed <= 10.0
    assert budget.granted == 100


async def test_waiters_are_granted_in_fifo_order() -> None:
    clock = FakeClock()
    budget = QpsBudget(3, clock=clock, sleep=clock.sleep)
    grants = await run_concurrently(budget, clock, 20)
    assert [index for index, _ in grants] == list(range(20))
    times = [t for _, t in grants]
    assert times == sorted(times)


async def test_fractional_qps_spaces_grants() -> None:
    clock = FakeClock(start=0.0)
    budget = QpsBudget(0.5, margin_s=0.0, clock=clock, sleep=clock.sleep)
    assert (budget.burst, budget.window_s) == (1, 2.0)
    grants = await run_concurrently(budget, clock, 4)
    assert [t for _, t in grants] == pytest.approx([0.0, 2.0, 4.0, 6.0])


async def test_no_wait_under_the_budget_and_waits_are_counted() -> None:
    clock = FakeClock(start=0.0)
    budget = QpsBudget(2, margin_s=0.0, clock=clock, sleep=clock.sleep)
    assert await budget.acquire() == 0.0
    assert await budget.acquire() == 0.0
    assert clock.sleeps == []
    clock.now = 0.25
    waited = await budget.acquire()
    assert waited == pytest.approx(0.75)
    assert clock.now == pytest.approx(1.0)
    assert budget.total_wait_s == pytest.approx(0.75)


async def test_grants_free_up_as_time_passes() -> None:
    clock = FakeClock(start=0.0)
    budget = QpsBudget(2, clock=clock, sleep=clock.sleep)
    await budget.acquire()
    await budget.acquire()
    clock.now = 5.0
    assert await budget.acquire() == 0.0
    assert await budget.acquire() == 0.0


async def test_total_wait_sums_over_concurrent_callers() -> None:
    clock = FakeClock(start=0.0)
    budget = QpsBudget(1, margin_s=0.0, clock=clock, sleep=clock.sleep)
    waits = await asyncio.gather(*(budget.acquire() for _ in range(3)))
    assert waits == pytest.approx([0.0, 1.0, 2.0])
    assert budget.total_wait_s == pytest.approx(3.0)


async def test_cancelled_waiter_uses_no_grant_and_blocks_nobody() -> None:
    clock = FakeClock(start=0.0)
    parked = asyncio.Event()

    async def parking_sleep(seconds: float) -> None:
        parked.set()
        await asyncio.Event().wait()  # never returns: only cancellation gets out

    budget = QpsBudget(1, margin_s=0.0, clock=clock, sleep=parking_sleep)
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

    budget = QpsBudget(1, margin_s=0.0, clock=clock, sleep=early_sleep)
    await budget.acquire()
    await budget.acquire()
    assert slept == pytest.approx([1.0, 0.3])
    assert clock.now == pytest.approx(1.0)


@pytest.mark.parametrize("qps", [0.0, -1.0, math.inf, math.nan])
def test_rejects_bad_qps(qps: float) -> None:
    with pytest.raises(ValueError, match="qps"):
        QpsBudget(qps)


def test_rejects_negative_margin() -> None:
    with pytest.raises(ValueError, match="margin_s"):
        QpsBudget(1, margin_s=-0.1)
