"""A poison entry: valid JSON whose processing fails every time goes to the dead-letter stream
after N deliveries, and the consumer keeps consuming everything else meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import Settings
from service.roles import service_role
from tests.support.snapshots import grant_snapshot
from tests.support.streams import entries
from tests.support.waiting import eventually

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(advertiser_id: str, grant: str, minute: int) -> bytes:
    return grant_snapshot("7001", advertiser_id, grant, T0 + timedelta(minutes=minute)).to_json()


async def test_poison_is_dead_lettered_after_n_tries_and_the_rest_flows(
    settings: Settings, redis_client: Redis
) -> None:
    settings = settings.model_copy(update={"notify": NotifySettings(console=False)})
    stream = settings.streams.snapshots
    # An impossible ledger: the poisoned account's ledger key holds a string, not a hash, so
    # every attempt to apply its snapshot fails (WRONGTYPE); the entry itself is valid JSON.
    await redis_client.set(settings.streams.key("ledger", "666"), "not a hash")
    async with service_role(settings, settings.redis_url or "") as broker:
        await broker.publish(snapshot("666", "100", 0), stream=stream)
        for minute, grant in enumerate(["300", "200", "50"]):
            await broker.publish(snapshot("71", grant, minute), stream=stream)

        async def healthy_account_alerted() -> bool:
            return len(await entries(redis_client, settings.streams.alerts)) > 0

        await eventually(healthy_account_alerted, within=10)

        async def poison_set_aside() -> bool:
            dead = await entries(redis_client, settings.streams.deadletter)
            return any(f[b"reason"] == b"too_many_deliveries" for f in dead)

        await eventually(poison_set_aside, within=30)
        await broker.publish(snapshot("71", "0", 5), stream=stream)

        async def still_consuming() -> bool:
            return len(await entries(redis_client, settings.streams.alerts)) > 1

        await eventually(still_consuming, within=10)

        async def nothing_pending() -> bool:
            return bool((await redis_client.xpending(stream, "detectors"))["pending"] == 0)

        await eventually(nothing_pending, within=10)

    dead = [
        f
        for f in await entries(redis_client, settings.streams.deadletter)
        if f[b"reason"] == b"too_many_deliveries"
    ]
    assert len(dead) == 1
    assert b'"advertiser_id":"666"' in dead[0][b"payload"]
    assert b"delivered 6 times" in dead[0][b"error"]


async def test_a_poison_entry_delays_only_its_own_batch(
    settings: Settings, redis_client: Redis
) -> None:
    """Poison and healthy entries read in one batch: the batch fails whole, its entries are
    reclaimed one by one, and the healthy ones are applied then (not lost, not doubled)."""
    settings = settings.model_copy(update={"notify": NotifySettings(console=False)})
    stream = settings.streams.snapshots
    await redis_client.set(settings.streams.key("ledger", "666"), "not a hash")
    await redis_client.xadd(stream, {"__data__": snapshot("71", "300", 0)})
    await redis_client.xadd(stream, {"__data__": snapshot("666", "100", 0)})
    await redis_client.xadd(stream, {"__data__": snapshot("71", "50", 1)})
    async with service_role(settings, settings.redis_url or ""):

        async def low_fired_once() -> bool:
            alerts = await entries(redis_client, settings.streams.alerts)
            return sum(b'"kind":"credit.low"' in body[b"__data__"] for body in alerts) == 1

        await eventually(low_fired_once, within=15)

        async def poison_set_aside() -> bool:
            dead = await entries(redis_client, settings.streams.deadletter)
            return any(f[b"reason"] == b"too_many_deliveries" for f in dead)

        await eventually(poison_set_aside, within=30)
    alerts = await entries(redis_client, settings.streams.alerts)
    assert sum(b'"kind":"credit.low"' in body[b"__data__"] for body in alerts) == 1
