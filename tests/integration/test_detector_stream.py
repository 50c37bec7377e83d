"""The detector path on a real Redis: stream in, state in Redis, alert transitions out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from faststream.redis import RedisBroker
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from config.settings import NotifySettings, Settings
from service.deadletter import DeadLetters
from service.detect import credit_balance
from service.detect.evaluate import evaluate
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState, Evaluation, StateStore, Step
from service.roles import service_role
from tests.support.snapshots import grant_snapshot
from tests.support.streams import body, drained, entries
from tests.support.waiting import eventually
from workers.contract.alerts import parse_transition
from workers.contract.snapshots import AccountBalanceSnapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(valid_grant: str, minute: int) -> AccountBalanceSnapshot:
    observed_at = T0 + timedelta(minutes=minute)
    return grant_snapshot("70", "71", valid_grant, observed_at, name="Draining Shop")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with no console notifications: the service roles here only
    detect."""
    return settings.model_copy(update={"notify": NotifySettings(console=False)})


async def alerts_on_stream(redis: Redis, settings: Settings) -> list[tuple[str, str]]:
    """The credit.low / credit.exhausted transitions these tests drive (others fire too)."""
    transitions = [parse_transition(body(f)) for f in await entries(redis, settings.streams.alerts)]
    ids = [t.transition_id for t in transitions]
    assert len(ids) == len(set(ids)), "no transition is ever emitted twice"
    balance_kinds = (credit_balance.LOW, credit_balance.EXHAUSTED)
    return [(t.kind, t.status) for t in transitions if t.kind in balance_kinds]


# A drain from 300 to 10 to 0, however often each snapshot is read: one low, one exhausted.
LOW_THEN_EXHAUSTED = [(credit_balance.LOW, "firing"), (credit_balance.EXHAUSTED, "firing")]


async def low_fired(redis: Redis, settings: Settings) -> bool:
    return (credit_balance.LOW, "firing") in await alerts_on_stream(redis, settings)


async def test_malformed_entries_are_dead_lettered_and_the_rest_flows(
    settings: Settings, redis_client: Redis
) -> None:
    stream = settings.streams.snapshots
    async with service_role(settings, settings.redis_url or "") as broker:
        await redis_client.xadd(stream, {"__data__": b"not json at all"})
        await redis_client.xadd(stream, {"__data__": b'{"kind": "account_balance"}'})
        await redis_client.xadd(stream, {"something": b"else"})
        await broker.publish(snapshot("300", 0).to_json(), stream=stream)
        await broker.publish(snapshot("10", 1).to_json(), stream=stream)
        await eventually(partial(low_fired, redis_client, settings))
        dead = await entries(redis_client, settings.streams.deadletter)
        assert len(dead) == 3
        assert {fields[b"reason"] for fields in dead} == {b"malformed"}
        assert {fields[b"source"] for fields in dead} == {b"snapshots"}
        assert dead[0][b"payload"] == b"not json at all"
        # Everything was acknowledged: nothing is left pending for the detectors.
        pending = await redis_client.xpending(stream, "detectors")
        assert pending["pending"] == 0


async def test_a_redelivered_snapshot_does_not_alert_twice(
    settings: Settings, redis_client: Redis
) -> None:
    stream = settings.streams.snapshots
    async with service_role(settings, settings.redis_url or "") as broker:
        for snap in (snapshot("300", 0), snapshot("10", 1), snapshot("10", 1), snapshot("0", 2)):
            await broker.publish(snap.to_json(), stream=stream)
        await broker.publish(snapshot("10", 1).to_json(), stream=stream)  # late duplicate

        await eventually(lambda: drained(redis_client, stream, "detectors"))
        assert await alerts_on_stream(redis_client, settings) == LOW_THEN_EXHAUSTED


async def test_racing_replicas_commit_one_transition(
    settings: Settings, redis_client: Redis
) -> None:
    """Two stores applying the same snapshot at once: WATCH makes one of them a no-op."""
    clients = [Redis.from_url(settings.redis_url or "") for _ in range(4)]
    try:
        stores = [StateStore(client, settings.streams, AccountState, "state") for client in clients]
        first = snapshot("300", 0)
        await stores[0].apply("71", lambda s: evaluate(s, first, AccountLedger(), settings.detect))
        low = snapshot("5", 1)
        results = await asyncio.gather(
            *(
                store.apply("71", lambda s: evaluate(s, low, AccountLedger(), settings.detect))
                for store in stores
            )
        )
        # One store commits the snapshot's transitions; the other three commit nothing.
        assert sorted(bool(r) for r in results) == [False, False, False, True]
        assert await alerts_on_stream(redis_client, settings) == [(credit_balance.LOW, "firing")]
    finally:
        for client in clients:
            await client.aclose()


async def test_dead_letters_keep_the_payload_and_count(
    settings: Settings, redis_client: Redis
) -> None:
    dead_letters = DeadLetters(redis_client, settings.streams)
    await dead_letters.put(source="x", reason="r", payload=b"p" * 100_000, error="boom")
    [fields] = await entries(redis_client, settings.streams.deadletter)
    assert fields[b"error"] == b"boom"
    assert len(fields[b"payload"]) == 64 * 1024


async def test_state_survives_a_restart(settings: Settings, redis_client: Redis) -> None:
    stream = settings.streams.snapshots

    async with service_role(settings, settings.redis_url or "") as broker:
        for snap in (snapshot("300", 0), snapshot("10", 1)):
            await broker.publish(snap.to_json(), stream=stream)
        await eventually(lambda: drained(redis_client, stream, "detectors"))
    # A new service process on the same Redis: the episode is remembered, not re-fired.
    async with service_role(settings, settings.redis_url or "") as broker:
        for snap in (snapshot("10", 1), snapshot("9", 2), snapshot("0", 3)):
            await broker.publish(snap.to_json(), stream=stream)
        await eventually(lambda: drained(redis_client, stream, "detectors"))
    assert await alerts_on_stream(redis_client, settings) == LOW_THEN_EXHAUSTED


async def test_snapshots_published_while_the_service_was_down_are_read(
    settings: Settings, redis_client: Redis
) -> None:
    stream = settings.streams.snapshots
    broker = RedisBroker(settings.redis_url or "")
    await broker.connect()
    for snap in (snapshot("300", 0), snapshot("10", 1)):
        await broker.publish(snap.to_json(), stream=stream)
    await broker.stop()
    async with service_role(settings, settings.redis_url or ""):
        await eventually(partial(low_fired, redis_client, settings))


def other(advertiser_id: str, valid_grant: str, minute: int) -> AccountBalanceSnapshot:
    return snapshot(valid_grant, minute).model_copy(update={"advertiser_id": advertiser_id})


async def test_one_batch_folds_each_advertisers_snapshots_in_stream_order(
    settings: Settings, redis_client: Redis
) -> None:
    """Entries written before the service starts arrive as one batch: three advertisers
    interleaved, one duplicate; each advertiser's episodes still open and close in order."""
    stream = settings.streams.snapshots
    drains = [("300", 0), ("10", 1), ("10", 1), ("0", 2), ("400", 3)]
    for valid_grant, minute in drains:
        for advertiser_id in ("81", "82", "83"):
            payload = other(advertiser_id, valid_grant, minute).to_json()
            await redis_client.xadd(stream, {"__data__": payload})
    async with service_role(settings, settings.redis_url or ""):
        await eventually(lambda: drained(redis_client, stream, "detectors"))
    transitions = [
        parse_transition(body(f)) for f in await entries(redis_client, settings.streams.alerts)
    ]
    assert len({t.transition_id for t in transitions}) == len(transitions)
    balance_kinds = (credit_balance.LOW, credit_balance.EXHAUSTED)
    for advertiser_id in ("81", "82", "83"):
        seen = [
            (t.kind, t.status, t.observed_at - T0)
            for t in transitions
            if t.advertiser_id == advertiser_id and t.kind in balance_kinds
        ]
        assert seen == [
            (credit_balance.LOW, "firing", timedelta(minutes=1)),
            (credit_balance.EXHAUSTED, "firing", timedelta(minutes=2)),
            (credit_balance.LOW, "resolved", timedelta(minutes=3)),
            (credit_balance.EXHAUSTED, "resolved", timedelta(minutes=3)),
        ]


async def test_a_batch_that_keeps_colliding_is_split_and_every_state_commits(
    settings: Settings, redis_client: Redis
) -> None:
    """Another replica writes one account of the batch while it is evaluated, twice: the
    batch is retried, then split, and every account's transitions are committed once."""
    store = StateStore(redis_client, settings.streams, AccountState, "state")
    rival = SyncRedis.from_url(settings.redis_url or "")
    ledger = AccountLedger()
    ids = ("91", "92", "93")
    for advertiser_id in ids:
        first = other(advertiser_id, "300", 0)
        await store.apply(
            advertiser_id,
            partial(evaluate, snapshot=first, ledger=ledger, settings=settings.detect),
        )
    interference = {"left": 2}

    def step(advertiser_id: str) -> Step[AccountState]:
        low = other(advertiser_id, "5", 1)

        def run(state: AccountState | None) -> Evaluation[AccountState] | None:
            if advertiser_id == "92" and interference["left"]:
                interference["left"] -= 1
                rival.set(store.key("92"), rival.get(store.key("92")) or b"")
            return evaluate(state, low, ledger, settings.detect)

        return run

    try:
        transitions = await store.apply_many({i: step(i) for i in ids})
    finally:
        rival.close()
    assert interference["left"] == 0
    fired = sorted((t.advertiser_id, t.kind) for t in transitions if t.kind == credit_balance.LOW)
    assert fired == [(i, credit_balance.LOW) for i in ids]
    assert await alerts_on_stream(redis_client, settings) == [(credit_balance.LOW, "firing")] * 3
    for advertiser_id in ids:
        state = await store.load(advertiser_id)
        assert state is not None and credit_balance.LOW in state.open
