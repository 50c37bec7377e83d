"""Stopping background loops when a cancel is lost (``workers.stopping``).

The lost cancel is reproduced the way AnyIO loses one (agronholm/anyio#1214): the task's
``CancelledError`` is caught and the task goes on with ``cancelling() == 1``. That hung the
poller role's exit in CI (its risk-poll loop was in an HTTP call when cancelled).
"""

from __future__ import annotations

import asyncio
from typing import Any

from workers.risk_polls import risk_polling
from workers.stopping import cancel_and_wait


async def _loses_first_cancel(ran: list[str]) -> None:
    """A loop whose first cancel is swallowed inside its work, as a cancel scope does."""
    lost = False
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True
            ran.append("cancel lost")


async def test_one_cancel_leaves_the_loop_running() -> None:
    ran: list[str] = []
    task = asyncio.create_task(_loses_first_cancel(ran))
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done, "the premise: one cancel does not end this loop"
    assert ran == ["cancel lost"] and task.cancelling() == 1
    await cancel_and_wait([task], again_after_s=0.05)


async def test_cancel_and_wait_cancels_again_until_the_task_ends() -> None:
    ran: list[str] = []
    losing = asyncio.create_task(_loses_first_cancel(ran))
    plain = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([losing, plain], again_after_s=0.05), timeout=30)
    assert losing.cancelled() and plain.cancelled()
    assert ran == ["cancel lost"]


async def test_ended_and_failed_tasks_are_consumed_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.wait({failed, finished})
    await cancel_and_wait([failed, finished])
    assert isinstance(failed.exception(), RuntimeError)


class _LosesACancel:
    """A risk-poll round whose first cancel is swallowed by the call it is in."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.lost = False

    async def run(self) -> int:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.lost:
                raise
            self.lost = True
        return 0


async def test_risk_polling_ends_when_a_round_loses_its_cancel() -> None:
    round_ = _LosesACancel()
    risks: list[Any] = [round_]
    async with asyncio.timeout(30):
        async with risk_polling(risks):
            await round_.started.wait()
    assert round_.lost, "the premise: the first cancel was lost"
