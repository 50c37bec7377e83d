"""A restart loses no pending retry and never sends a delivered one again.

Once with the real service role (its loops on the real clock, a 2 s retry), once with two
pipelines built one after the other on a fake clock, as a restarted process would.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.notify import RetrySchedule
from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.deliveries import Delivery, DeliveryStore
from service.roles import service_role
from service.streams import NOTIFIERS
from tests.support.notify import notify_settings, pipeline, transition
from tests.support.receiver import SECRET, Reply, WebhookSink
from tests.support.streams import drained
from tests.support.waiting import eventually
from workers.contract.alerts import AlertTransition


def webhook_settings(settings: Settings, url: str, retry_s: float) -> Settings:
    return notify_settings(
        settings,
        receivers=[{"type": "webhook", "name": "ops", "url": url, "secret": SECRET}],
        route={"receiver": "ops", "group_wait": 0, "group_interval": 0, "group_by": ["..."]},
        retry=RetrySchedule(delays=[timedelta(seconds=retry_s)] * 3, jitter=0),
        poll_interval_s=0.05,
    )


async def publish(settings: Settings, alert: AlertTransition) -> None:
    broker = RedisBroker(settings.redis_url or "")
    await broker.connect()
    await broker.publish(alert.to_json(), stream=settings.streams.alerts)
    await broker.stop()


async def the_delivery(store: DeliveryStore) -> Delivery:
    [delivery] = await store.history(limit=10)
    return delivery


async def test_the_service_restarted_while_a_retry_waits_delivers_it_exactly_once(
    settings: Settings, redis_client: Redis
) -> None:
    async with WebhookSink([Reply(500)]) as sink:
        settings = webhook_settings(settings, sink.url, retry_s=2.0)
        store = DeliveryStore(redis_client, settings.streams, history=timedelta(days=1))
        await publish(settings, transition())

        async with service_role(settings, settings.redis_url or ""):
            await eventually(lambda: _received(sink, 1))
        # Stopped: the retry waits in Redis.
        waiting = await the_delivery(store)
        assert waiting.status == "pending"
        assert [a.status_code for a in waiting.attempts] == [500]
        assert await store.queue_size() == 1

        async with service_role(settings, settings.redis_url or ""):
            await eventually(lambda: _received(sink, 2))
            await eventually(lambda: drained(redis_client, settings.streams.alerts, NOTIFIERS))
            await eventually(lambda: _queue_empty(store))
        # A third start finds nothing left to do.
        async with service_role(settings, settings.redis_url or ""):
            await eventually(lambda: _queue_empty(store))

    assert len(sink.received) == 2
    assert len({r.headers["webhook-id"] for r in sink.received}) == 1
    done = await the_delivery(store)
    assert done.status == "delivered"
    assert [a.status_code for a in done.attempts] == [500, 200]


async def test_a_new_process_picks_up_the_retry_on_a_fake_clock(
    settings: Settings, redis_url: str, clock: FakeClock
) -> None:
    payload = transition().to_json()
    async with WebhookSink([Reply(502)]) as sink, httpx.AsyncClient() as http:
        settings = webhook_settings(settings, sink.url, retry_s=300)
        first = Redis.from_url(redis_url)
        before = pipeline(settings, first, http, clock)
        await before.notifier.handle(payload, "1-0")
        await before.run_once()
        await first.aclose()  # the process ends

        clock.advance(timedelta(minutes=4))
        second = Redis.from_url(redis_url)
        after = pipeline(settings, second, http, clock)
        await after.notifier.handle(payload, "1-0")  # its stream entry, redelivered
        await after.run_once()
        assert len(sink.received) == 1  # the retry is not due yet
        clock.advance(timedelta(minutes=1))
        await after.run_once()
        clock.advance(timedelta(hours=1))
        await after.run_once()
        await second.aclose()
    assert [r.payload is not None for r in sink.received] == [True, True]
    assert len(sink.received) == 2


async def _received(sink: WebhookSink, count: int) -> bool:
    return len(sink.received) >= count


async def _queue_empty(store: DeliveryStore) -> bool:
    return await store.queue_size() == 0
