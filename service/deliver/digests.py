"""Digests on schedule: each receiver with a ``digest`` gets one per period, once.

A receiver's period is its latest scheduled moment (``at`` in ``time_zone``, every day or on
``weekday``), named by its local date. Each round compares it with the last period sent to
that receiver (kept in Redis): a newer one is made now and queued as a delivery whose id is
``<receiver>:digest:<period>``, so the normal sender delivers it (retries, rate limit, dead
letters) and two replicas that both see it due create it once. A service that was down over
several due times finds only the latest period newer than its record: it sends one digest
when it comes back, not one per missed day. A newly configured digest starts with its next
due time (``digest send`` sends one at once).

``queue_now`` is ``creditwatch digest send``: a digest outside the schedule (its own id),
which leaves the schedule's record alone.

Keys (under the stream prefix): ``digest:sent:<receiver>`` (the last period queued).

Usage::

    digests = Digests(redis, settings, deliveries)
    await digests.queue_due()                    # the service role, every round
    digest = await digests.compose("finance-mail")   # ``digest preview``
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from config.notify import (
    WEEKDAYS,
    AnyReceiver,
    DigestSchedule,
    EmailReceiverSettings,
    SlackReceiverSettings,
)
from config.redis_text import decoded
from config.settings import Settings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.digest import Digest, make_digest
from service.deliver.links import AlertLinks
from service.detect.accounts import AccountsReader
from service.write_batch import WriteBatch

__all__ = ["DIGEST_TYPES", "Digests", "latest_due", "period_of"]

# The receiver types that can take a digest.
DIGEST_TYPES = (EmailReceiverSettings, SlackReceiverSettings)
DEFAULT_SCHEDULE = DigestSchedule()


def latest_due(schedule: DigestSchedule, now: datetime) -> datetime:
    """The latest scheduled moment at or before ``now`` (aware, in the schedule's zone)."""
    zone = ZoneInfo(schedule.time_zone)
    today = now.astimezone(zone).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if schedule.schedule == "weekly" and WEEKDAYS[day.weekday()] != schedule.weekday:
            continue
        moment = datetime.combine(day, schedule.at, tzinfo=zone)
        if moment.astimezone(UTC) <= now.astimezone(UTC):
            return moment
    raise AssertionError("a weekly schedule is due within 8 days")  # pragma: no cover


def period_of(moment: datetime) -> str:
    """A period's name: the local date of its scheduled moment (sorts as time does)."""
    return moment.date().isoformat()


class Digests:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        deliveries: DeliveryStore,
        clock: Clock = utc_now,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._deliveries = deliveries
        self._clock = clock
        self._accounts = AccountsReader(redis, settings)

    def scheduled(self) -> list[tuple[str, DigestSchedule]]:
        """(receiver, schedule) for every receiver with a ``digest``."""
        return [
            (r.name, r.digest)
            for r in self._settings.notify.all_receivers()
            if isinstance(r, DIGEST_TYPES) and r.digest is not None
        ]

    def digest_receiver(self, name: str) -> AnyReceiver:
        """The receiver ``name``; KeyError if unknown, TypeError if it takes no digest."""
        receiver = self._settings.notify.receiver(name)
        if not isinstance(receiver, DIGEST_TYPES):
            raise TypeError(f"receiver {name} is {receiver.type}: digests go to email or slack")
        return receiver

    def _key(self, receiver: str) -> str:
        return self._settings.streams.keyspace.digest_sent(receiver)

    async def compose(self, receiver: str | None = None, *, period: str | None = None) -> Digest:
        """The digest as of now, for ``receiver`` (its schedule names it) or a default one."""
        schedule = DEFAULT_SCHEDULE
        if receiver is not None:
            settings = self.digest_receiver(receiver)
            assert isinstance(settings, DIGEST_TYPES)
            schedule = settings.digest or DEFAULT_SCHEDULE
        now = self._clock()
        period = period or period_of(now.astimezone(ZoneInfo(schedule.time_zone)))
        return make_digest(
            await self._accounts.all(),
            title=f"creditwatch {schedule.schedule} digest, {period}",
            period=period,
            now=now,
            links=AlertLinks.of(self._settings.notify),
        )

    async def queue_due(self) -> list[str]:
        """Queue every digest whose period is newer than the last one sent; their ids."""
        queued: list[str] = []
        now = self._clock()
        for receiver, schedule in self.scheduled():
            period = period_of(latest_due(schedule, now))
            raw = await self._redis.get(self._key(receiver))
            if raw is None:
                # First sight of this receiver's digest: it starts with the next due time
                # (started at 07:00, a daily 08:00 digest must not send yesterday's first).
                await self._redis.set(self._key(receiver), period, nx=True)
                continue
            last = decoded(raw)
            if last >= period:
                continue
            delivery = await self._delivery(receiver, period, period=period, now=now)
            batch = WriteBatch()
            self._deliveries.queue(batch, delivery)
            batch.set(self._key(receiver), period)
            await batch.run(self._redis, self._settings.streams.keyspace.slot_key())
            queued.append(delivery.id)
        return queued

    async def queue_now(self, receiver: str) -> str:
        """Queue a digest for ``receiver`` at once, outside its schedule; the delivery id."""
        now = self._clock()
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        delivery = await self._delivery(receiver, f"now-{stamp}", period=None, now=now)
        await self._deliveries.create(delivery)
        return delivery.id

    async def _delivery(
        self, receiver: str, suffix: str, *, period: str | None, now: datetime
    ) -> Delivery:
        return Delivery.new(
            delivery_id=f"{receiver}:digest:{suffix}",
            receiver=receiver,
            transitions=[],
            now=now,
            digest=await self.compose(receiver, period=period),
        )
