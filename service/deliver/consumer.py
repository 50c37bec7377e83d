"""The notifiers' stream handler: route one alert transition into the groups of its receivers.

For each receiver the route tree gives, a transition is either recorded as silenced (in the
delivery history, not sent), or joins the receiver's alert group, from which the flusher makes
deliveries. Joining is idempotent per (receiver, transition), so a redelivered stream entry
(after a crash, or reclaimed by another replica) never makes a second delivery. Disabled
receivers (410) are skipped.

Usage::

    notifier = Notifier(router, groups, silences=..., deliveries=..., disabled=...,
                        dead_letters=..., send_resolved={"ops": True}, wake=event)
    await notifier.handle(payload, entry_id)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from service import metrics
from service.alerts import parse_transition
from service.deadletter import DeadLetters
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.disabled import DisabledReceivers
from service.deliver.groups import GroupStore
from service.deliver.routing import Router, RouteTarget
from service.deliver.silences import Silences

__all__ = ["ExtraTargets", "Notifier"]

# Receivers found per transition beyond the route tree: the API's webhook subscriptions.
ExtraTargets = Callable[[dict[str, str]], Awaitable[list[RouteTarget]]]

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(
        self,
        router: Router,
        groups: GroupStore,
        *,
        silences: Silences,
        deliveries: DeliveryStore,
        disabled: DisabledReceivers,
        dead_letters: DeadLetters,
        send_resolved: dict[str, bool],
        clock: Clock = utc_now,
        wake: asyncio.Event | None = None,
        extra_targets: ExtraTargets | None = None,
    ) -> None:
        self._router = router
        self._extra_targets = extra_targets
        self._groups = groups
        self._silences = silences
        self._deliveries = deliveries
        self._disabled = disabled
        self._dead_letters = dead_letters
        self._send_resolved = send_resolved
        self._clock = clock
        self._wake = wake

    async def handle(self, payload: bytes, entry_id: str) -> None:
        try:
            transition = parse_transition(payload)
        except ValueError as error:
            await self._dead_letters.put(
                source="alerts",
                reason="malformed",
                payload=payload,
                error=str(error),
                entry_id=entry_id,
            )
            return
        now = self._clock()
        labels = self._router.labels(transition)
        targets = self._router.targets(transition)
        if self._extra_targets is not None:
            targets += await self._extra_targets(labels)
        if not targets:
            metrics.DELIVERIES.labels(receiver="", outcome="unrouted").inc()
            log.warning("alert.unrouted", alert_id=transition.alert_id, kind=transition.kind)
            return
        silence = await self._silences.matching(labels, now)
        for target in targets:
            if await self._disabled.is_disabled(target.receiver):
                metrics.DELIVERIES.labels(receiver=target.receiver, outcome="disabled").inc()
                continue
            wanted = transition.status == "firing" or self._send_resolved.get(target.receiver, True)
            result = await self._groups.add(
                target, labels, transition, now=now, notify=silence is None and wanted
            )
            if result == "quiet" and silence is not None:
                await self._deliveries.create(
                    Delivery.new(
                        delivery_id=f"{target.receiver}:{transition.transition_id}:silenced",
                        receiver=target.receiver,
                        transitions=[transition],
                        now=now,
                        status="silenced",
                        note=f"silenced by {silence.id} ({silence.author}: {silence.comment})",
                    )
                )
                metrics.DELIVERIES.labels(receiver=target.receiver, outcome="silenced").inc()
            log.debug(
                "alert.routed",
                receiver=target.receiver,
                alert_id=transition.alert_id,
                status=transition.status,
                result=result,
            )
        if self._wake is not None:
            self._wake.set()
