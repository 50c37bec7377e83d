"""The sender: attempts due deliveries once each, and decides what happens next.

Each round claims the due deliveries (leased, so replicas never attempt the same one at
once), skips any that are no longer pending (a delivered one is never sent again), waits its
turn under the receiver's rate limit (rescheduled, never dropped), makes one attempt and
records it. A failed attempt is retried after the next wait of the schedule (with jitter) or
the receiver's ``Retry-After``; after the last attempt, or on a final answer, the delivery is
failed and dead-lettered, and queued for the receiver's ``fallback`` if it names one. A 410
disables the receiver and raises ``ops.receiver_disabled``.

A round claims a page of up to ``CLAIM_PAGE`` and reads their documents, and whether their
receivers are disabled, once for the page; while pages come back full the next round starts
at once, up to ``MAX_IN_FLIGHT`` claimed and unfinished, ``ATTEMPTS_AT_ONCE`` per receiver.
While the loop runs, the notifier of the same process hands it the deliveries it made on
joining (``take``), leased to it by the join: sent as a claimed page would be, without the
claim or the read.

Usage::

    sender = Sender(store, receivers, limiter=..., disabled=..., dead_letters=...,
                    retry=settings.notify.retry, announce=publish, lease=..., rng=...)
    await sender.run_once()        # one round; ``run`` loops until cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

import jinja2
import structlog

from config.notify import RetrySchedule
from service import metrics
from service.deadletter import DeadLetters
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Attempt, Delivery, DeliveryStore
from service.deliver.disabled import DisabledReceivers, receiver_disabled_alert
from service.deliver.fallback import fallback_deliveries
from service.deliver.receiver_limits import RateLimiter
from service.deliver.receivers import Outcome, Receiver
from service.deliver.schedule import honour_retry_after, next_wait
from workers.contract import wire
from workers.contract.alerts import AlertTransition
from workers.stopping import cancel_and_wait

__all__ = ["ResolveReceiver", "Sender", "chains", "wait_for_event"]

log = structlog.get_logger(__name__)

# Deliveries one claim takes, and how many a sender has claimed and not yet finished.
CLAIM_PAGE = 100
MAX_IN_FLIGHT = 500
# Attempts on their way to one receiver at once; the rest wait here, not in an HTTP pool:
# the subscriptions' guarded client is httpx's own, where each queued request's turn costs a
# scan of the whole queue (the receivers' keep-alive transport caps its connections too).
ATTEMPTS_AT_ONCE = 32

Announce = Callable[[AlertTransition], Awaitable[None]]
# Receivers not in the settings, looked up by name per delivery: the API's subscriptions.
ResolveReceiver = Callable[[str], Awaitable[Receiver | None]]


async def wait_for_event(event: asyncio.Event, timeout_s: float) -> None:
    """Until ``event`` is set or ``timeout_s`` has passed, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


# A webhook delivery's id is ``<receiver>:<alert_id>:<status>[:repeat-<n>]``.
_EPISODE_PART = re.compile(r":(?:firing|resolved)(?::repeat-\d+)?$")


def chains(delivery_ids: Sequence[str]) -> list[list[str]]:
    """Claimed deliveries in the order they must go out: one chain per receiver and alert
    episode, its firing before its resolved; different chains may go out at once.

    Sent side by side, an episode's two notifications (claimed in one round when an alert
    clears quickly) could reach the receiver resolved-first, leaving it firing there.
    """
    by_episode: dict[str, list[str]] = {}
    for delivery_id in delivery_ids:
        by_episode.setdefault(_EPISODE_PART.sub("", delivery_id), []).append(delivery_id)
    return [sorted(chain, key=lambda i: ":resolved" in i) for chain in by_episode.values()]


@dataclass(eq=False, slots=True)
class Sender:
    """Sends the due deliveries of ``store`` to ``receivers`` (see the module docstring)."""

    store: DeliveryStore
    receivers: Mapping[str, Receiver]
    _: KW_ONLY
    limiter: RateLimiter
    disabled: DisabledReceivers
    dead_letters: DeadLetters
    retry: RetrySchedule
    announce: Announce
    lease: timedelta
    rng: random.Random  # the retries' jitter
    clock: Clock = utc_now
    resolve: ResolveReceiver | None = None
    # Receiver -> the receiver its failed deliveries go to.
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    _sending: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False)
    # The running loop's claimed and unfinished chains (``run``), and what it does when one
    # finishes; None while no loop runs.
    _in_flight: dict[asyncio.Task[None], list[str]] = field(default_factory=dict, init=False)
    _finished: Callable[[asyncio.Task[None]], None] | None = field(default=None, init=False)

    async def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were claimed."""
        now = self.clock()
        ids = await self.store.claim(now, lease=self.lease)
        claimed = await self._read_page(ids, leased_until=now + self.lease)
        await asyncio.gather(*(self._process_chain(chain, claimed) for chain in chains(ids)))
        metrics.RETRY_QUEUE.set(await self.store.queue_size())
        return len(ids)

    def room(self) -> int:
        """Deliveries ``take`` accepts now: 0 unless the loop (``run``) is running."""
        if self._finished is None:
            return 0
        return max(0, MAX_IN_FLIGHT - self._claimed())

    def take(self, deliveries: Sequence[Delivery], *, leased_until: datetime) -> bool:
        """Send deliveries this process just made and leased to itself (the notifier's, sent on
        joining) as if a round had claimed them: no claim, no reading back what is in hand.
        Their lease makes them another sender's only if this one dies or runs out of time.
        False if the loop stopped meanwhile: they are the caller's to hand back."""
        if self._finished is None:
            return False
        page = _Page({d.id: d for d in deliveries}, {}, leased_until)
        self._start(chains([d.id for d in deliveries]), page)
        return True

    def _claimed(self) -> int:
        return sum(map(len, self._in_flight.values()))

    def _start(self, claimed_chains: list[list[str]], page: _Page) -> None:
        assert self._finished is not None
        for chain in claimed_chains:
            task = asyncio.create_task(self._process_logged(chain, page))
            self._in_flight[task] = chain
            task.add_done_callback(self._finished)

    async def _read_page(self, delivery_ids: Sequence[str], *, leased_until: datetime) -> _Page:
        """The claimed deliveries' documents, and which of their receivers are disabled."""
        documents = await self.store.get_many(delivery_ids)
        names = {d.receiver for d in documents.values() if d is not None}
        disabled = {n: await self.disabled.is_disabled(n) for n in names}
        return _Page(documents, disabled, leased_until)

    async def _process_chain(self, delivery_ids: Sequence[str], page: _Page) -> None:
        for delivery_id in delivery_ids:
            await self._process(delivery_id, page)

    async def _process(self, delivery_id: str, page: _Page) -> None:
        """One claimed delivery, as read when it was claimed (leased: no one else changes it;
        a receiver disabled since is found so by its next page)."""
        if self._lease_ran_out(delivery_id, page.leased_until):
            return
        delivery = page.documents[delivery_id]
        if delivery is None or delivery.status != "pending":
            await self.store.drop_from_queue(delivery_id)
            return
        receiver = self.receivers.get(delivery.receiver)
        if receiver is None and self.resolve is not None:
            receiver = await self.resolve(delivery.receiver)
        if receiver is None:
            await self._give_up(delivery, Outcome.failed("receiver is not configured"))
            return
        if page.disabled.get(delivery.receiver, False):
            await self._give_up(delivery, Outcome.failed("receiver is disabled (HTTP 410)"))
            return
        now = self.clock()
        wait_s = await self.limiter.reserve(receiver.name, per_s=receiver.rate_limit_per_s, now=now)
        if wait_s > 0:
            later = now + timedelta(seconds=wait_s)
            await self.store.save(delivery.model_copy(update={"next_attempt_at": later}), due=later)
            metrics.DELIVERIES.labels(receiver=receiver.name, outcome="rate_limited").inc()
            return
        outcome = await self._attempt(receiver, delivery, page.leased_until)
        if outcome is None:
            return
        await self._record(delivery, outcome)
        if outcome.result == "gone":  # disabled now: the rest of the page is not attempted
            page.disabled[delivery.receiver] = True

    def _lease_ran_out(self, delivery_id: str, leased_until: datetime) -> bool:
        """Waited (behind its chain, its receiver's other attempts, a stalled Redis) past its
        lease: it is due again and may be claimed by another round already, so sending,
        giving up or dropping it here would do it twice."""
        if self.clock() < leased_until:
            return False
        log.info("delivery.lease_expired", delivery_id=delivery_id)
        return True

    async def _attempt(
        self, receiver: Receiver, delivery: Delivery, leased_until: datetime
    ) -> Outcome | None:
        """The attempt's outcome; None if its lease ran out while it waited its turn."""
        sending = self._sending.setdefault(receiver.name, asyncio.Semaphore(ATTEMPTS_AT_ONCE))
        async with sending:
            if self._lease_ran_out(delivery.id, leased_until):
                return None
            return await self._attempt_now(receiver, delivery)

    async def _attempt_now(self, receiver: Receiver, delivery: Delivery) -> Outcome:
        try:
            return await receiver.attempt(delivery)
        except jinja2.TemplateError as error:
            return Outcome.failed(f"template error: {error}")
        except Exception as error:
            log.exception(
                "delivery.receiver_error", receiver=receiver.name, delivery_id=delivery.id
            )
            return Outcome.retry(f"receiver error: {type(error).__name__}")

    async def _record(self, delivery: Delivery, outcome: Outcome) -> None:
        now = self.clock()
        attempt = Attempt(
            at=now,
            result=outcome.result,
            status_code=outcome.status_code,
            error=None if outcome.result == "delivered" else outcome.detail,
        )
        attempts = [*delivery.attempts, attempt]
        metrics.DELIVERIES.labels(receiver=delivery.receiver, outcome=outcome.result).inc()
        if outcome.result == "delivered":
            done = delivery.model_copy(
                update={"attempts": attempts, "status": "delivered", "next_attempt_at": None}
            )
            await self.store.save(done, due=None)
            log.info("delivery.sent", receiver=delivery.receiver, delivery_id=delivery.id)
            return
        tried = delivery.model_copy(update={"attempts": attempts})
        if outcome.result == "gone":
            await self._disable(delivery.receiver, outcome)
        if outcome.result != "retry":
            await self._give_up(tried, outcome, recorded=True)
            return
        wait = next_wait(self.retry, attempts_made=tried.attempts_this_round, rng=self.rng)
        if wait is None:
            await self._give_up(tried, outcome, recorded=True)
            return
        if outcome.retry_after_s is not None:
            wait = honour_retry_after(self.retry, outcome.retry_after_s)
        later = now + wait
        await self.store.save(tried.model_copy(update={"next_attempt_at": later}), due=later)
        log.warning(
            "delivery.retry",
            receiver=delivery.receiver,
            delivery_id=delivery.id,
            attempt=tried.attempts_this_round,
            reason=outcome.detail,
            retry_in_s=round(wait.total_seconds(), 3),
        )

    async def _give_up(
        self, delivery: Delivery, outcome: Outcome, *, recorded: bool = False
    ) -> None:
        if not recorded:
            attempt = Attempt(at=self.clock(), result="failed", error=outcome.detail)
            delivery = delivery.model_copy(update={"attempts": [*delivery.attempts, attempt]})
            metrics.DELIVERIES.labels(receiver=delivery.receiver, outcome="failed").inc()
        failed = delivery.model_copy(
            update={"status": "failed", "next_attempt_at": None, "note": outcome.detail}
        )
        await self.store.save(failed, due=None)
        metrics.DELIVERIES_DEADLETTERED.labels(receiver=delivery.receiver).inc()
        await self.dead_letters.put(
            source="deliveries",
            reason="undeliverable",
            payload=wire.dumps(
                {
                    "delivery_id": delivery.id,
                    "receiver": delivery.receiver,
                    "transitions": [t.model_dump(mode="json") for t in delivery.transitions],
                }
            ),
            error=f"{delivery.receiver}: {outcome.detail} "
            f"(after {delivery.attempts_this_round} attempt(s))",
            entry_id=delivery.id,
        )
        await self._fall_back(failed)

    async def _fall_back(self, failed: Delivery) -> None:
        fallback = self.fallbacks.get(failed.receiver)
        if fallback is None:
            return
        target = self.receivers.get(fallback)
        kind = target.kind if target is not None else "webhook"
        for copy in fallback_deliveries(failed, fallback, kind=kind, now=self.clock()):
            await self.store.create(copy)  # SET NX: queued once, however often we get here
            log.warning("delivery.fallback", receiver=failed.receiver, delivery_id=copy.id)

    async def _disable(self, receiver: str, outcome: Outcome) -> None:
        alert = receiver_disabled_alert(receiver, outcome.detail, self.clock())
        if await self.disabled.disable(receiver, alert=alert):
            log.error("receiver.disabled", receiver=receiver, reason=outcome.detail)
            await self.announce(alert)

    async def run(self, wake: asyncio.Event, every_s: float, stopping: asyncio.Event) -> None:
        """Rounds until cancelled: every ``every_s`` seconds, sooner when woken, and at once
        again while a round finds a full page of due deliveries.

        Each claimed delivery runs as a task of its own, so one slow endpoint (a 15 s timeout)
        does not hold up the others; its lease keeps it from being claimed twice meanwhile.
        At most ``MAX_IN_FLIGHT`` are claimed and not yet done: a backlog stays in Redis
        rather than queued here past its lease (then it would be claimed, and sent, twice).
        """
        in_flight = self._in_flight
        backlog = False  # the last round left due deliveries behind (a full page, or no room)

        def finished(done: asyncio.Task[None]) -> None:
            in_flight.pop(done, None)
            if backlog and self._claimed() <= MAX_IN_FLIGHT - CLAIM_PAGE:
                wake.set()  # room for a page of the backlog: no waiting for the next tick

        self._finished = finished
        try:
            while not stopping.is_set():
                wake.clear()
                backlog, page = False, CLAIM_PAGE
                try:
                    page = min(MAX_IN_FLIGHT - self._claimed(), CLAIM_PAGE)
                    now = self.clock()
                    claimed = (
                        await self.store.claim(now, lease=self.lease, limit=page)
                        if page > 0
                        else []
                    )
                    read = await self._read_page(claimed, leased_until=now + self.lease)
                    self._start(chains(claimed), read)
                    backlog = len(claimed) == page
                    metrics.RETRY_QUEUE.set(await self.store.queue_size())
                except Exception:
                    log.exception("sender.round_failed")
                if not backlog or page < CLAIM_PAGE:
                    await wait_for_event(wake, every_s)
        finally:
            self._finished = None
            # Stopped mid-attempt: hand the deliveries back so a restart tries them at once
            # (had the attempt gone through, the receiver drops the repeat by its id).
            interrupted = [delivery_id for chain in in_flight.values() for delivery_id in chain]
            await cancel_and_wait(list(in_flight))
            in_flight.clear()
            with contextlib.suppress(Exception):
                await self.store.release(interrupted, self.clock())

    async def _process_logged(self, delivery_ids: Sequence[str], page: _Page) -> None:
        for delivery_id in delivery_ids:
            try:
                await self._process(delivery_id, page)
            except Exception:
                log.exception("delivery.process_failed", delivery_id=delivery_id)


@dataclass(frozen=True)
class _Page:
    """A page of claimed deliveries as read in one round trip, and whether each of their
    receivers was disabled then."""

    documents: Mapping[str, Delivery | None]
    disabled: dict[str, bool]
    # The claim's lease: past it the delivery is someone else's to send.
    leased_until: datetime
