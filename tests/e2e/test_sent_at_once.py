"""A zero-wait webhook's transition is sent as it joins its group (``groups.py``): its delivery
is made by the join, and the group is left as a flush of that transition would leave it, on a
real Redis, a real signed webhook endpoint and a fake clock. Anything a flush would hold back
or group still waits for one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock, to_epoch
from service.deliver.groups import GroupStore
from service.deliver.pipeline import NotifyPipeline
from tests.support.notify import NotifyWith, notify_settings, resolved, transition
from tests.support.receiver import Reply, WebhookSink
from tests.support.waiting import eventually

REPEAT = timedelta(hours=4)


def hooked(settings: Settings, sink: WebhookSink, **route: Any) -> Settings:
    hook, base = sink.receiver_and_route("ops")
    return notify_settings(
        settings,
        receivers=[hook],
        route=base.model_copy(update=route),
        repeat_interval=REPEAT,
        mute_time_intervals=[
            {"name": "nights", "time_zone": "UTC", "times": [{"start": "22:00", "end": "07:00"}]}
        ],
    )


async def group_rows(redis: Redis, notify: NotifyPipeline) -> list[tuple[str, float]]:
    """(group id, due time) of every group with something left to do."""
    rows = cast(
        "list[tuple[bytes, float]]",
        await redis.zrange(notify.groups.due_key, 0, -1, withscores=True),
    )
    return [(gid.decode(), float(due)) for gid, due in rows]


async def test_a_zero_wait_webhook_is_sent_on_joining_and_its_group_kept_as_a_flush_would(
    settings: Settings,
    sink: WebhookSink,
    clock: FakeClock,
    notify_with: NotifyWith,
    redis_client: Redis,
) -> None:
    notify = notify_with(hooked(settings, sink), console=io.StringIO())
    firing = transition()
    await notify.notifier.handle(firing.to_json(), "1-0")
    # Queued by the join itself: a flush finds nothing to make.
    assert await notify.deliveries.queue_size() == 1
    assert await notify.groups.flush_due(clock.now) == []
    await notify.sender.run_once()
    assert sink.arrived() == ["credit.exhausted firing 71"]
    # The firing alert stays in its group, due for its reminder a repeat interval on.
    [(gid, due)] = await group_rows(redis_client, notify)
    assert due == to_epoch(clock.now + REPEAT)
    group, pending, firing_key = notify.groups.streams.keyspace.group(gid)
    assert await redis_client.hlen(pending) == 0 and await redis_client.hlen(firing_key) == 1

    # The same entry read again (a crash before its XACK) sends nothing twice.
    await notify.notifier.handle(firing.to_json(), "1-0")
    await notify.run_once()
    assert len(sink.received) == 1

    # The reminder comes from the flush, as before.
    clock.advance(REPEAT)
    await notify.run_once()
    await notify.run_once()
    assert sink.arrived() == ["credit.exhausted firing 71"] * 2
    [reminder] = [d for d in await notify.deliveries.history(limit=10) if d.repeat]
    assert reminder.id.endswith(":repeat-2")

    # Resolved: sent on joining too, and the group, with nothing left firing, is gone.
    clock.advance(timedelta(minutes=1))
    await notify.notifier.handle(resolved(firing, clock.now).to_json(), "2-0")
    assert await notify.deliveries.queue_size() == 1
    await notify.sender.run_once()
    assert sink.arrived()[-1] == "credit.exhausted resolved 71"
    assert await group_rows(redis_client, notify) == []
    assert await redis_client.exists(group, pending, firing_key) == 0
    assert all(r.verified for r in sink.received) and len(sink.received) == 3


NIGHT = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("route", "at", "wait"),
    [
        pytest.param({"group_wait": timedelta(seconds=30)}, None, 30, id="group_wait"),
        pytest.param({"mute_time_intervals": ["nights"]}, NIGHT, 7.5 * 3600, id="quiet_hours"),
    ],
)
async def test_what_a_flush_would_hold_back_still_waits_for_one(
    settings: Settings,
    sink: WebhookSink,
    clock: FakeClock,
    notify_with: NotifyWith,
    route: dict[str, Any],
    at: datetime | None,
    wait: float,
) -> None:
    clock.now = at or clock.now
    notify = notify_with(hooked(settings, sink, **route), console=io.StringIO())
    low = transition("credit.low", severity="warning", starts_at=clock.now, grant="3")
    await notify.notifier.handle(low.to_json(), "1-0")
    await notify.run_once()
    assert await notify.deliveries.queue_size() == 0 and sink.received == []
    clock.advance(timedelta(seconds=wait))
    await notify.run_once()
    await notify.run_once()
    assert sink.arrived() == ["credit.low firing 71"]


async def test_a_transition_joining_a_group_that_holds_another_waits_with_it(
    settings: Settings, sink: WebhookSink, clock: FakeClock, notify_with: NotifyWith
) -> None:
    """A group still holding a transition (quiet hours ended, not yet flushed) is flushed as
    one: what joins it then goes out with what was there first, not ahead of it."""
    clock.now = NIGHT
    notify = notify_with(
        hooked(settings, sink, mute_time_intervals=["nights"], group_by=["bc_id"]),
        console=io.StringIO(),
    )
    low = transition("credit.low", severity="warning", starts_at=NIGHT, grant="3")
    await notify.notifier.handle(low.to_json(), "1-0")
    clock.now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # the quiet hours are over
    # Another account of the same business center (the same account's would inhibit it).
    exhausted = transition(starts_at=clock.now, advertiser_id="72")
    await notify.notifier.handle(exhausted.to_json(), "2-0")
    assert await notify.deliveries.queue_size() == 0  # joined the held one, not sent alone
    await notify.run_once()
    await notify.run_once()
    assert sorted(sink.arrived()) == ["credit.exhausted firing 72", "credit.low firing 71"]


async def test_with_its_loops_running_the_sender_takes_what_is_sent_on_joining_leased_to_it(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith, redis_client: Redis
) -> None:
    """No claim round: the join leases the delivery to this process and its sender has it in
    hand. A peer's claim meanwhile finds nothing; stopped mid-attempt, it hands the delivery
    back, due at once, and the next sender sends it (the same ``webhook-id``)."""
    async with WebhookSink([Reply(delay_s=60)]) as slow:
        notify = notify_with(hooked(settings, slow), console=io.StringIO())
        firing = transition()
        async with notify:
            await notify.notifier.handle(firing.to_json(), "1-0")

            async def attempted() -> bool:
                return len(slow.received) == 1

            await eventually(attempted)
            [(delivery_id, due)] = cast(
                "list[tuple[bytes, float]]",
                await redis_client.zrange(notify.deliveries.due_key, 0, -1, withscores=True),
            )
            assert due == to_epoch(clock.now + notify.sender.lease)
            assert await notify.deliveries.claim(clock.now, lease=notify.sender.lease) == []
        assert await notify.deliveries.claim(clock.now, lease=notify.sender.lease) == [
            delivery_id.decode()
        ]
        await notify.deliveries.release([delivery_id.decode()], clock.now)
        await notify.sender.run_once()
    first, again = slow.received
    assert again.verified and again.headers["webhook-id"] == first.headers["webhook-id"]
    delivered = await notify.deliveries.get(delivery_id.decode())
    assert delivered is not None and delivered.status == "delivered"


async def test_what_a_stopping_sender_could_not_take_is_handed_back_due_at_once(
    settings: Settings,
    sink: WebhookSink,
    clock: FakeClock,
    notify_with: NotifyWith,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop stops while a batch joins its groups (a shutdown): the deliveries the join
    leased to it are made due now, not left waiting for their lease, and the next sender
    sends them."""
    notify = notify_with(hooked(settings, sink), console=io.StringIO())
    joining = GroupStore.add_many

    async def stopping_meanwhile(groups: GroupStore, *args: Any, **kwargs: Any) -> Any:
        joined = await joining(groups, *args, **kwargs)
        await notify.__aexit__(None, None, None)
        return joined

    monkeypatch.setattr(GroupStore, "add_many", stopping_meanwhile)
    await notify.__aenter__()
    await notify.notifier.handle(transition().to_json(), "1-0")
    [(_, due)] = cast(
        "list[tuple[bytes, float]]",
        await redis_client.zrange(notify.deliveries.due_key, 0, -1, withscores=True),
    )
    assert due == to_epoch(clock.now)
    await notify.sender.run_once()
    assert sink.arrived() == ["credit.exhausted firing 71"]
