"""Stopping background tasks so that a stop always ends, even when a cancel is lost.

A single ``task.cancel()`` is not enough on asyncio: a cancel that lands in the same loop
iteration as a library's own cancellation can be swallowed. AnyIO's cancel scopes do this
(agronholm/anyio#1214, open in 4.16: httpx runs on AnyIO, so any task in an HTTP call is
exposed), and so does Python 3.11's ``asyncio.wait_for`` when the awaited call finishes as the
cancel arrives. The task then goes on with ``cancelling() == 1`` and a loop such as a poller's
or a sender's never ends, so whoever awaited it waits forever. ``cancel_and_wait`` cancels
again, each ``again_after_s``, until every task has ended.

Usage::

    tasks = [asyncio.create_task(loop(each)) for each in work]
    ...
    await cancel_and_wait(tasks)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

# A lost cancel is rare: one second more at a stop costs little, and the next cancel lands.
AGAIN_AFTER_S = 1.0


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, again_after_s: float = AGAIN_AFTER_S
) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling any still running again
    every ``again_after_s``. Their outcomes (results, errors) are consumed, not raised."""
    stopping = set(tasks)
    pending = {task for task in stopping if not task.done()}
    ended = stopping - pending
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=again_after_s)
        ended |= done
    for task in ended:
        if not task.cancelled():
            task.exception()  # marks it retrieved: the caller stopped it and asked for no result
