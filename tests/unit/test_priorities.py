"""The priority scheduler on fake time: grants by rank, a long low-priority sweep never
starves balances, paced sweeps yield while ahead, balance sweeps turn urgent when due, and
``tiktok.budget_share`` cuts the budget."""

from __future__ import annotations

import asyncio

from config.settings import TikTokSettings
from tests.support.fake_time import FakeMonotonic
from workers.api_budget import ApiBudget, RateBudget, RateLimits
from workers.priorities import BalanceSweep, Fixed, PacedSweep, Priority, claiming


def budget_on(clock: FakeMonotonic, qps: float = 1) -> RateBudget:
    return RateBudget(RateLimits(qps), margin_s=0.0, clock=clock, sleep=clock.sleep)


async def test_waiters_are_granted_by_rank_then_arrival() -> None:
    clock = FakeMonotonic()
    budget = budget_on(clock)
    await budget.acquire()  # the window is now full: everyone below waits
    order: list[str] = []

    async def ask(name: str, priority: Priority) -> None:
        await budget.acquire(Fixed(priority))
        order.append(name)

    tasks = [
        asyncio.create_task(ask("report-1", Priority.REPORTS)),
        asyncio.create_task(ask("cost", Priority.COST)),
        asyncio.create_task(ask("report-2", Priority.REPORTS)),
        asyncio.create_task(ask("balance", Priority.BALANCES)),
        asyncio.create_task(ask("spare", Priority.SPARE)),
    ]
    await asyncio.gather(*tasks)
    assert order == ["balance", "cost", "report-1", "report-2", "spare"]
    assert budget.granted == 6


async def test_a_long_report_sweep_does_not_starve_a_later_balance_sweep() -> None:
    clock = FakeMonotonic()
    budget = budget_on(clock, qps=2)
    report = Fixed(Priority.REPORTS)
    balance = Fixed(Priority.BALANCES)

    async def sweep(claimant: Fixed, requests: int) -> float:
        with claiming(claimant):
            for _ in range(requests):
                await budget.acquire()  # the claimant comes from the context
        return clock.now

    reports = asyncio.create_task(sweep(report, 1_000))  # 500 s of requests at 2/s
    for _ in range(10_000):  # until the report sweep is well under way
        if report.grants >= 20:
            break
        await asyncio.sleep(0)
    started = clock.now
    balances_done = await sweep(balance, 10)
    # Ten balance pages at 2/s take 5 s (one more grant may already be promised to the
    # report sweep): the report backlog of 980 requests does not stand in front of them.
    assert balances_done - started <= 5.5
    assert report.grants < 40
    reports.cancel()
    await asyncio.gather(reports, return_exceptions=True)


async def test_equal_ranks_are_first_come() -> None:
    clock = FakeMonotonic()
    budget = budget_on(clock)
    await budget.acquire()
    order: list[int] = []

    async def ask(n: int) -> None:
        await budget.acquire(Fixed(Priority.COST))
        order.append(n)

    await asyncio.gather(*(ask(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]


async def test_a_paced_sweep_ahead_of_its_pace_yields_even_to_spare_balance_sweeps() -> None:
    clock = FakeMonotonic()
    # Four requests over an interval of 100 s: at PACE 0.8, one every 20 s is on pace.
    paced = PacedSweep(Priority.REPORTS, interval_s=100, expected=4, clock=clock)
    spare = BalanceSweep(interval_s=300, last_done=0.0, clock=clock)
    assert spare.rank() == Priority.SPARE
    assert paced.rank() == Priority.REPORTS  # nothing done yet: 0/4 <= 0 elapsed
    paced.granted()
    assert paced.rank() == Priority.AHEAD  # 1/4 done at 0 % of the pace span
    assert paced.rank() > spare.rank()
    clock.now = 20.0  # a quarter of the 80 s span gone: on pace again
    assert paced.rank() == Priority.REPORTS
    assert paced.rank() < spare.rank()


async def test_a_paced_sweep_of_unknown_size_probes_then_insists_then_paces() -> None:
    clock = FakeMonotonic()
    paced = PacedSweep(Priority.COST, interval_s=1_000, clock=clock)  # pace span 800 s
    assert paced.rank() == Priority.AHEAD  # spare budget only, while probing (40 s)
    clock.now = 40.0
    assert paced.rank() == Priority.COST
    for _ in range(10):
        paced.granted()
    paced.expect(100)  # 10 done at 40 s; 90 left over the 760 s left
    assert paced.rank() == Priority.COST  # exactly on pace
    paced.granted()
    assert paced.rank() == Priority.AHEAD  # one request ahead of it
    clock.now = 40.0 + 760 * 0.5  # half-way: 45 of the 90 should be done, 1 is
    assert paced.rank() == Priority.COST


async def test_a_balance_sweep_turns_urgent_when_it_must_start_to_end_in_time() -> None:
    clock = FakeMonotonic(start=1_000.0)
    # The last sweep ended at 900 and took 20 s: to end within PACE of the 300 s interval
    # (240 s), the next must start by 900 + 240 - 20.
    early = BalanceSweep(interval_s=300, last_done=900.0, took_s=20.0, clock=clock)
    assert early.rank() == Priority.SPARE
    clock.now = 1_119.0
    assert early.rank() == Priority.SPARE
    clock.now = 1_120.0
    assert early.rank() == Priority.BALANCES
    # Not knowing what a sweep takes: half that span.
    unknown = BalanceSweep(interval_s=300, last_done=900.0, clock=clock)
    clock.now = 1_019.0
    assert unknown.rank() == Priority.SPARE
    clock.now = 1_020.0
    assert unknown.rank() == Priority.BALANCES
    assert BalanceSweep(interval_s=300, last_done=None, clock=clock).rank() == Priority.BALANCES


async def test_the_rank_is_read_when_the_grant_is_free_not_on_arrival() -> None:
    clock = FakeMonotonic()
    budget = budget_on(clock)
    await budget.acquire()
    sweep = BalanceSweep(interval_s=10, last_done=-3.0, clock=clock)  # due at -3 + 8 - 4
    order: list[str] = []

    async def ask(name: str, claimant: BalanceSweep | Fixed) -> None:
        await budget.acquire(claimant)
        order.append(name)

    # On arrival the balance sweep is spare (below reports); when the next grant is free
    # (t = 1) it is due, and goes first.
    await asyncio.gather(ask("report", Fixed(Priority.REPORTS)), ask("balance", sweep))
    assert order == ["balance", "report"]


async def test_a_cancelled_waiter_hands_its_turn_on() -> None:
    clock = FakeMonotonic()
    budget = budget_on(clock)
    await budget.acquire()
    first = asyncio.create_task(budget.acquire(Fixed(Priority.BALANCES)))
    second = asyncio.create_task(budget.acquire(Fixed(Priority.REPORTS)))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, timeout=5)
    assert budget.granted == 2


def test_budget_share_cuts_every_limit() -> None:
    tiktok = TikTokSettings(qps=10, qpm=600, qpd=864_000, budget_share=0.25)
    limits = ApiBudget.from_settings(tiktok).limits
    assert (limits.qps, limits.qpm, limits.qpd) == (2.5, 150, 216_000)
    assert ApiBudget.from_settings(TikTokSettings(qps=10, qpm=600)).limits.qpm == 600
