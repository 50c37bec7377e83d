"""Tick claims on a real Redis: one winner per job and tick, and takeover when a winner stops."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from config.settings import Settings
from tests.support.fake_time import FakeMonotonic
from workers.claims import TickClaims


def claimants(
    redis: Redis, settings: Settings, clock: FakeMonotonic, *owners: str
) -> list[TickClaims]:
    """One replica's claims per owner, all on the same clock."""
    return [TickClaims(redis, settings.streams, owner=owner, clock=clock) for owner in owners]


async def test_one_replica_wins_each_tick(settings: Settings, redis_client: Redis) -> None:
    clock = FakeMonotonic(1_000_000.0)
    replicas = claimants(redis_client, settings, clock, *(f"r{i}" for i in range(5)))
    for tick in range(3):
        results = await asyncio.gather(*(r.claim("balance:7001", 10) for r in replicas))
        winners = [r for r in results if r is not None]
        assert winners == [100_000 + tick]
        clock.now += 10
    # Different jobs do not compete.
    assert await replicas[0].claim("balance:7002", 10) is not None


async def test_another_replica_takes_over_the_next_tick(
    settings: Settings, redis_client: Redis
) -> None:
    clock = FakeMonotonic(500.0)
    leader, follower = claimants(redis_client, settings, clock, "leader", "follower")
    assert await leader.claim("balance:7001", 5) == 100
    assert await follower.claim("balance:7001", 5) is None
    clock.now += 5  # the leader died: nobody claims tick 101 for it
    assert await follower.claim("balance:7001", 5) == 101
    key = settings.streams.key("claim", "balance:7001", "101")
    assert await redis_client.get(key) == b"follower"
    assert 0 < await redis_client.pttl(key) <= 10_000


async def test_a_sweep_is_leased_whole_and_its_end_told_to_every_replica(
    settings: Settings, redis_client: Redis
) -> None:
    clock = FakeMonotonic(2_000.0)
    one, two = claimants(redis_client, settings, clock, "one", "two")
    job = "advertiser_balance:7001@default"
    lease = await one.sweep(job, interval_s=300)
    assert lease is not None
    assert await two.sweep(job, interval_s=300) is None  # one sweep at a time
    assert await two.last_done(job) is None
    clock.now = 2_012.5
    await one.release(lease, done=True)
    assert await two.last_done(job) == 2_012.5
    second = await two.sweep(job, interval_s=300)
    assert second is not None
    # A stale holder cannot give back a lease that is no longer its own.
    await one.release(lease, done=False)
    assert await one.sweep(job, interval_s=300) is None
    await two.release(second, done=False)  # a failed sweep: the last end stays
    assert await one.last_done(job) == 2_012.5
    assert await one.sweep(job, interval_s=300) is not None
