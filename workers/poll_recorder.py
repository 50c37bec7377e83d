"""Recording each successful poll as a poll mark, for ``/readyz`` and the data-age metric.

The poller's jobs are APScheduler jobs named ``<source>:<bc_id>@<connection>`` whose return
value is a ``PollResult`` on success and None when the API call failed (a mark is per source
and business center, whichever connection polled it). Listening to the scheduler's
"job executed" events records a mark (wall time: readiness and data age are about the
service's own clock, not the API's) without the pollers knowing about marks.

Usage::

    recorder = PollRecorder(PollMarks(redis, settings.streams))
    recorder.attach(scheduler)
    ...
    await recorder.drain()
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler
from redis.exceptions import RedisError

from workers.poll_marks import PollMarks
from workers.poller import PollResult

__all__ = ["PollRecorder"]

log = structlog.get_logger(__name__)


class PollRecorder:
    """Turns successful poll jobs into poll marks."""

    def __init__(self, marks: PollMarks) -> None:
        self._marks = marks
        # Listeners are synchronous: the write runs as a task, kept here until done.
        self._writes: set[asyncio.Task[None]] = set()

    def attach(self, scheduler: BaseScheduler) -> None:
        scheduler.add_listener(self._on_executed, EVENT_JOB_EXECUTED)

    def _on_executed(self, event: JobExecutionEvent) -> None:
        if not isinstance(event.retval, PollResult):
            return  # the poll failed (logged and counted by the poller), or not a poll
        source = str(event.job_id).partition(":")[0]
        task = asyncio.get_running_loop().create_task(self._mark(source, event.retval.bc_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _mark(self, source: str, bc_id: str) -> None:
        try:
            await self._marks.mark(source, bc_id, at=datetime.now(UTC))
        except (RedisError, OSError) as error:
            # The next successful poll writes it again; readiness turns stale only if none do.
            log.warning("poll_mark.failed", source=source, bc_id=bc_id, error=str(error))

    async def drain(self) -> None:
        if self._writes:
            await asyncio.wait(set(self._writes))
