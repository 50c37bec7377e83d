"""The delivery store's saves on a real Redis: what a save leaves behind (document, TTL, the
due queue, the failed index), alone and with many saves made side by side, which go out
together (``GroupCommit``) and must each land as if made alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import to_epoch
from service.deliver.deliveries import Attempt, Delivery, DeliveryStore
from tests.support.notify import T0, transition

HISTORY = timedelta(days=30)


def pending(n: int) -> Delivery:
    return Delivery.new(
        delivery_id=f"hooks:{n}", receiver="hooks", transitions=[transition()], now=T0
    )


@pytest.fixture
def store(settings: Settings, redis_client: Redis) -> DeliveryStore:
    return DeliveryStore(redis_client, settings.streams, history=HISTORY)


def tried(delivery: Delivery, result: str) -> Delivery:
    attempt = Attempt(at=T0, result=result)
    status = {"delivered": "delivered", "failed": "failed"}.get(result, "pending")
    return delivery.model_copy(update={"attempts": [attempt], "status": status})


async def test_a_done_delivery_keeps_its_history_ttl_and_leaves_the_queue(
    store: DeliveryStore, redis_client: Redis
) -> None:
    delivery = pending(1)
    await store.create(delivery)
    await store.save(tried(delivery, "delivered"), due=None)
    saved = await store.get(delivery.id)
    assert saved is not None and saved.status == "delivered"
    ttl = await redis_client.ttl(store.key(delivery.id))
    assert HISTORY.total_seconds() - 60 < ttl <= HISTORY.total_seconds()
    assert await redis_client.zscore(store.due_key, delivery.id) is None


async def test_a_retried_delivery_is_queued_again_and_kept_without_ttl(
    store: DeliveryStore, redis_client: Redis
) -> None:
    delivery = pending(1)
    await store.create(delivery)
    await store.save(tried(delivery, "failed"), due=None)  # failed: TTL, dead-lettered index
    assert await store.failed_ids() == [delivery.id]
    later = T0 + timedelta(minutes=5)
    await store.save(tried(delivery, "retry"), due=later)  # replayed and retried
    assert await redis_client.ttl(store.key(delivery.id)) == -1
    assert await redis_client.zscore(store.due_key, delivery.id) == to_epoch(later)
    assert await store.failed_ids() == []


async def test_saves_made_side_by_side_each_land_as_if_made_alone(
    store: DeliveryStore, redis_client: Redis
) -> None:
    deliveries = [pending(n) for n in range(60)]
    for delivery in deliveries:
        await store.create(delivery)
    results = ["delivered", "retry", "failed"]
    later = T0 + timedelta(minutes=1)
    await asyncio.gather(
        *(
            store.save(tried(d, results[n % 3]), due=later if results[n % 3] == "retry" else None)
            for n, d in enumerate(deliveries)
        )
    )
    saved = await store.get_many([d.id for d in deliveries])
    for n, delivery in enumerate(deliveries):
        document = saved[delivery.id]
        assert document is not None
        assert document.status == {"retry": "pending"}.get(results[n % 3], results[n % 3])
        due = await redis_client.zscore(store.due_key, delivery.id)
        assert due == (to_epoch(later) if results[n % 3] == "retry" else None)
    assert sorted(await store.failed_ids()) == sorted(
        d.id for n, d in enumerate(deliveries) if results[n % 3] == "failed"
    )
