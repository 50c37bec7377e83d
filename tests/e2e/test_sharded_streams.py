"""Several shards on a standalone Redis: the same code path as on a Cluster. The publisher
routes each snapshot to its owner's shard, the detectors consume every shard stream, each
shard's transitions land on its own alerts stream, and the notifiers deliver them all."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import Settings, StreamSettings
from service.detect import credit_balance
from service.roles import service_role
from tests.support.receiver import WebhookSink
from tests.support.snapshots import grant_snapshot
from tests.support.streams import body, entries
from tests.support.waiting import eventually
from workers.contract.alerts import parse_transition
from workers.contract.snapshots import AccountBalanceSnapshot, SourceStatusSnapshot
from workers.publish import SnapshotPublisher

SHARDS = 4
ADVERTISERS = [str(7_400_000_000_000 + n) for n in range(24)]
GRANTS = ["1000", "100", "0"]  # low, then exhausted
T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def published(redis: Redis, stream: str) -> list[dict[str, Any]]:
    return [json.loads(body(fields)) for fields in await entries(redis, stream)]


def balance(advertiser: str, poll: int) -> AccountBalanceSnapshot:
    return grant_snapshot("7401", advertiser, GRANTS[poll], T0 + timedelta(minutes=poll))


async def test_accounts_flow_through_their_own_shard_and_are_all_notified(
    settings: Settings, redis_client: Redis
) -> None:
    streams = StreamSettings(
        prefix=settings.streams.prefix, shards=SHARDS, consumer="shard-test", reclaim_idle_ms=500
    )
    space = streams.keyspace
    async with WebhookSink() as sink:
        hook, route = sink.receiver_and_route("shards", kinds=["credit.exhausted"])
        settings = settings.model_copy(
            update={
                "streams": streams,
                "notify": NotifySettings(
                    console=False,
                    default_inhibit_rules=False,
                    receivers=[hook],
                    route=route,
                ),
            }
        )
        broker = RedisBroker(settings.redis_url or "")
        publisher = SnapshotPublisher(broker, redis_client, streams)
        async with service_role(settings, settings.redis_url or ""):
            for poll in range(len(GRANTS)):
                await publisher.publish([balance(a, poll) for a in ADVERTISERS])
            status = SourceStatusSnapshot(
                bc_id="7401", source="advertiser_balance", status="ok", observed_at=T0
            )
            await publisher.publish([status])

            async def all_exhausted() -> bool:
                return len(sink.payloads()) >= len(ADVERTISERS)

            await eventually(all_exhausted, within=30)

        # Each snapshot is on its owner's shard stream, in poll order.
        for shard, stream in enumerate(space.snapshot_streams()):
            owners = [
                (s["advertiser_id"], s["observed_at"])
                for s in await published(redis_client, stream)
                if s["kind"] == "account_balance"
            ]
            mine = [a for a in ADVERTISERS if space.shard_of(a) == shard]
            assert mine, "24 accounts reach every one of 4 shards"
            assert sorted({a for a, _ in owners}) == sorted(mine)
            for advertiser in mine:
                times = [t for a, t in owners if a == advertiser]
                assert times == sorted(times) and len(times) == len(GRANTS)
        # The center's own snapshot went by the center's id.
        center_stream = space.snapshot_stream(space.shard_of("7401"))
        assert "source_status" in {s["kind"] for s in await published(redis_client, center_stream)}
        # Each shard's transitions are on its own alerts stream, none twice.
        for shard, stream in enumerate(space.alert_streams()):
            transitions = [parse_transition(body(f)) for f in await entries(redis_client, stream)]
            ids = [t.transition_id for t in transitions]
            assert len(ids) == len(set(ids))
            assert {t.advertiser_id for t in transitions} <= {
                a for a in ADVERTISERS if space.shard_of(a) == shard
            }
        assert Counter(p["data"]["advertiser_id"] for p in sink.payloads()) == dict.fromkeys(
            ADVERTISERS, 1
        )
        assert all(p["data"]["status"] == "firing" for p in sink.payloads())
        assert {p["type"] for p in sink.payloads()} == {credit_balance.EXHAUSTED}
