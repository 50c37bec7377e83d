"""The notifiers' stream handler: route alert transitions into the groups of their receivers.

For each receiver the route tree gives, a transition is either recorded as silenced (in the
delivery history, not sent), or joins the receiver's alert group, from which the flusher makes
deliveries (or which makes its delivery at once, ``groups.py``: the sender is woken then).
Every transition is shown to the inhibitor first (it tracks the firing sources; groups muted
by a source that resolves are flushed at once). Joining is idempotent per
(receiver, transition), so a redelivered stream entry (after a crash, or reclaimed by another
replica) never makes a second delivery. Disabled receivers (410) are skipped. A batch read
from the stream is routed against one reading of the silences and subscriptions, and joins
its groups in one pipelined round trip, in stream order.

Usage::

    notifier = Notifier(router, groups, silences=..., deliveries=..., disabled=...,
                        dead_letters=..., send_resolved={"ops": True}, wake=event)
    await notifier.handle_batch([(payload, entry_id), ...])  # or handle(payload, entry_id)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

import structlog

from service import metrics
from service.deadletter import DeadLetters
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.disabled import DisabledReceivers
from service.deliver.groups import AddResult, GroupStore, Join
from service.deliver.inhibit import Inhibitor
from service.deliver.routing import Router, RouteTarget
from service.deliver.sender import Sender
from service.deliver.silences import Silence, Silences, first_matching
from workers.contract.alerts import AlertTransition, parse_transition

__all__ = ["ExtraTargets", "Notifier"]

# Receivers found per transition beyond the route tree (the API's webhook subscriptions):
# read once per batch, then asked per transition.
ExtraTargets = Callable[[], Awaitable[Callable[[dict[str, str]], list[RouteTarget]]]]

log = structlog.get_logger(__name__)


@dataclass(eq=False, slots=True)
class Notifier:
    router: Router
    groups: GroupStore
    _: KW_ONLY
    silences: Silences
    deliveries: DeliveryStore
    disabled: DisabledReceivers
    dead_letters: DeadLetters
    send_resolved: dict[str, bool]
    clock: Clock = utc_now
    wake: asyncio.Event | None = None  # the flusher's
    wake_sender: asyncio.Event | None = None  # for joins sent at once
    sender: Sender | None = None  # takes them in hand while its loop runs
    extra_targets: ExtraTargets | None = None
    inhibitor: Inhibitor | None = None

    async def handle(self, payload: bytes, entry_id: str) -> None:
        """One entry (a reclaimed one): a batch of one."""
        await self.handle_batch([(payload, entry_id)])

    async def handle_batch(self, entries: Sequence[tuple[bytes, str]]) -> None:
        """Route a batch of (payload, entry id), in stream order; malformed ones go to the
        dead-letter stream. The batch joins its groups in one round trip."""
        transitions = await self.dead_letters.parsed(entries, parse_transition, source="alerts")
        if not transitions:
            return
        # Before routing: a source nobody is routed to still inhibits.
        woke = await self._observe(transitions, self.clock())
        view = _BatchView(
            silences=await self.silences.all(),
            extra_targets=await self.extra_targets() if self.extra_targets else None,
            disabled=self.disabled,
        )
        joins: list[tuple[Join, Silence | None]] = []
        for transition in transitions:
            # Each at its own time: groups made by one batch are due in stream order.
            joins += await self._joins(transition, view, self.clock())
        # What is sent on joining goes to this process's sender in hand, leased to it, when
        # it has room for all of them: no claim round, no reading back what was just written.
        leased_until = None
        if self.sender is not None and self.sender.room() >= len(joins):
            leased_until = self.clock() + self.sender.lease
        joined = await self.groups.add_many([join for join, _ in joins], leased_until=leased_until)
        results = [result for result, _ in joined]
        for (join, silence), result in zip(joins, results, strict=True):
            await self._joined(join, silence, result)
        if self.wake is not None and (woke or "added" in results):
            self.wake.set()
        made = [delivery for _, delivery in joined if delivery is not None]
        if made and leased_until is not None and self.sender is not None:
            if not self.sender.take(made, leased_until=leased_until):
                # Its loop stopped while the batch joined (a shutdown): due now, for the next.
                await self.deliveries.release([d.id for d in made], self.clock())
        elif made and self.wake_sender is not None:
            self.wake_sender.set()

    async def _observe(self, transitions: Sequence[AlertTransition], now: datetime) -> bool:
        """Show the batch to the inhibitor; True if that made held groups due."""
        if self.inhibitor is None or not await self.inhibitor.observe(transitions):
            return False
        held = await self.inhibitor.holding()
        await self.groups.wake(held, now)
        return bool(held)

    async def _joins(
        self, transition: AlertTransition, view: _BatchView, now: datetime
    ) -> list[tuple[Join, Silence | None]]:
        """The groups ``transition`` joins (one per receiver routed to, not disabled), each
        with the silence that holds it back, if any."""
        labels = self.router.labels(transition)
        targets = self.router.targets(transition)
        if view.extra_targets is not None:
            targets += view.extra_targets(labels)
        if not targets:
            metrics.DELIVERIES.labels(receiver="", outcome="unrouted").inc()
            log.warning("alert.unrouted", alert_id=transition.alert_id, kind=transition.kind)
            return []
        silence = first_matching(view.silences, labels, now)
        out: list[tuple[Join, Silence | None]] = []
        for target in targets:
            if await view.is_disabled(target.receiver):
                metrics.DELIVERIES.labels(receiver=target.receiver, outcome="disabled").inc()
                continue
            wanted = transition.status == "firing" or self.send_resolved.get(target.receiver, True)
            notify = silence is None and wanted
            out.append((Join(target, labels, transition, notify, now), silence))
        return out

    async def _joined(self, join: Join, silence: Silence | None, result: AddResult) -> None:
        receiver, transition = join.target.receiver, join.transition
        if result == "quiet" and silence is not None:
            await self.deliveries.create(
                Delivery.new(
                    delivery_id=f"{receiver}:{transition.transition_id}:silenced",
                    receiver=receiver,
                    transitions=[transition],
                    now=join.at,
                    status="silenced",
                    note=f"silenced by {silence.id} ({silence.author}: {silence.comment})",
                )
            )
            metrics.DELIVERIES.labels(receiver=receiver, outcome="silenced").inc()
        log.debug(
            "alert.routed",
            receiver=receiver,
            alert_id=transition.alert_id,
            status=transition.status,
            result=result,
        )


class _BatchView:
    """What a batch of transitions is routed against, read once for the batch: the silences,
    the subscriptions, and (when first asked) whether a receiver is disabled."""

    def __init__(
        self,
        *,
        silences: list[Silence],
        extra_targets: Callable[[dict[str, str]], list[RouteTarget]] | None,
        disabled: DisabledReceivers,
    ) -> None:
        self.silences = silences
        self.extra_targets = extra_targets
        self._disabled = disabled
        self._known: dict[str, bool] = {}

    async def is_disabled(self, receiver: str) -> bool:
        if receiver not in self._known:
            self._known[receiver] = await self._disabled.is_disabled(receiver)
        return self._known[receiver]
