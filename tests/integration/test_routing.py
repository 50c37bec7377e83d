"""Routing, grouping, repeats, silences and quiet hours, on a fake clock and a real Redis.

Console receivers (which always succeed) stand in for the real ones here: what is checked is
who gets which transitions when, read back from the delivery history.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.notify import MuteTimeInterval, NotifySettings
from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from service.deliver.quiet_hours import muted_until
from service.deliver.routing import Router
from tests.support.notify import T0, notify_settings, pipeline, resolved, transition
from tests.support.silences import silence_from
from tests.support.streams import entries

CONSOLES = [{"type": "console", "name": n} for n in ("default", "growth", "finance", "pager")]


def routed(settings: Settings, route: dict[str, Any], **notify: Any) -> Settings:
    return notify_settings(settings, receivers=CONSOLES, route=route, **notify)


async def sent(notify: NotifyPipeline) -> list[tuple[str, list[str], bool]]:
    """(receiver, ["kind status advertiser", ...], repeat) per delivery, oldest first."""
    rows = await notify.deliveries.history(limit=100)
    return [
        (
            d.receiver,
            [f"{t.kind} {t.status} {t.advertiser_id}" for t in d.transitions],
            d.repeat,
        )
        for d in reversed(rows)
        if d.status == "delivered"
    ]


def make(settings: Settings, redis: Redis, outbound: httpx.AsyncClient, clock: FakeClock) -> Any:
    return pipeline(settings, redis, outbound, clock, console=io.StringIO())


TREE: dict[str, Any] = {
    "receiver": "default",
    "group_wait": 0,
    "group_interval": 0,
    "routes": [
        {"match": {"team": "growth"}, "receiver": "growth", "continue": True},
        {"match": {"kind": "credit.*", "severity": ["warning"]}, "receiver": "finance"},
        {"match": {"severity": "critical"}, "receiver": "pager"},
    ],
}
LABELS = {"7000000000009": {"team": "growth"}}


def test_the_route_tree_with_continue_labels_and_a_default() -> None:
    router = Router(
        NotifySettings.model_validate(
            {"console": False, "receivers": CONSOLES, "route": TREE, "account_labels": LABELS}
        )
    )

    def receivers(**kw: Any) -> list[str]:
        return [t.receiver for t in router.targets(transition(**kw))]

    assert receivers(kind="credit.low", severity="warning") == ["finance"]
    assert receivers(kind="credit.exhausted", severity="critical") == ["pager"]
    assert receivers(kind="data.stale", severity="info") == ["default"]
    # growth continues: it gets the alert and so does the next matching route.
    assert receivers(kind="credit.low", severity="warning", bc_id="7000000000009") == [
        "growth",
        "finance",
    ]
    assert receivers(kind="data.stale", severity="info", bc_id="7000000000009") == ["growth"]


async def test_routed_alerts_reach_their_receivers(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    notify = make(routed(settings, TREE, account_labels=LABELS), redis_client, outbound, clock)
    await notify.notifier.handle(transition("credit.low", severity="warning").to_json(), "1-0")
    await notify.notifier.handle(transition(bc_id="7000000000009").to_json(), "2-0")
    await notify.run_once()
    assert sorted(await sent(notify)) == [
        ("finance", ["credit.low firing 71"], False),
        ("growth", ["credit.exhausted firing 71"], False),
        ("pager", ["credit.exhausted firing 71"], False),
    ]


async def test_group_wait_then_group_interval_batch_alerts(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    route = {"receiver": "default", "group_wait": "30s", "group_interval": "5m"}
    notify = make(routed(settings, route), redis_client, outbound, clock)
    for n in range(3):
        await notify.notifier.handle(transition(advertiser_id=f"7{n}").to_json(), f"{n}-0")
        clock.advance(5)
    await notify.run_once()
    assert await sent(notify) == []
    clock.advance(15)  # 30 s after the first
    await notify.run_once()
    assert await sent(notify) == [
        ("default", [f"credit.exhausted firing 7{n}" for n in range(3)], False)
    ]
    # Later arrivals wait for group_interval after the last message.
    await notify.notifier.handle(transition(advertiser_id="79").to_json(), "9-0")
    clock.advance(60)
    await notify.run_once()
    assert len(await sent(notify)) == 1
    clock.advance(240)
    await notify.run_once()
    assert (await sent(notify))[-1] == ("default", ["credit.exhausted firing 79"], False)


async def test_still_firing_alerts_repeat_and_resolved_ones_do_not(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    route = {"receiver": "default", "group_wait": 0, "group_interval": 0, "repeat_interval": "4h"}
    notify = make(routed(settings, route), redis_client, outbound, clock)
    firing = transition()
    await notify.notifier.handle(firing.to_json(), "1-0")
    await notify.run_once()
    clock.advance(timedelta(hours=3, minutes=59))
    await notify.run_once()
    assert len(await sent(notify)) == 1
    clock.advance(timedelta(minutes=1))
    await notify.run_once()
    assert (await sent(notify))[-1] == ("default", ["credit.exhausted firing 71"], True)
    await notify.notifier.handle(resolved(firing, clock.now).to_json(), "2-0")
    await notify.run_once()
    clock.advance(timedelta(hours=8))
    await notify.run_once()
    assert [s[1][0] for s in await sent(notify)] == [
        "credit.exhausted firing 71",
        "credit.exhausted firing 71",
        "credit.exhausted resolved 71",
    ]


async def test_send_resolved_off_skips_resolved_notices(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    quiet = notify_settings(
        settings,
        receivers=[{"type": "console", "name": "default", "send_resolved": False}],
        route={"receiver": "default", "group_wait": 0, "group_interval": 0},
    )
    notify = make(quiet, redis_client, outbound, clock)
    firing = transition()
    await notify.notifier.handle(firing.to_json(), "1-0")
    await notify.notifier.handle(resolved(firing, T0).to_json(), "2-0")
    await notify.run_once()
    clock.advance(timedelta(days=2))
    await notify.run_once()
    assert [s[1] for s in await sent(notify)] == [["credit.exhausted firing 71"]]


async def test_silenced_alerts_are_recorded_not_sent(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    notify = make(
        routed(settings, {"receiver": "default", "group_wait": 0, "group_interval": 0}),
        redis_client,
        outbound,
        clock,
    )
    silence = await silence_from(
        notify.silences,
        {"kind": "credit.*", "advertiser_id": "71"},
        now=T0,
        lasting=timedelta(hours=2),
        comment="top-up on its way",
        author="ana",
    )
    firing = transition()
    await notify.notifier.handle(firing.to_json(), "1-0")
    await notify.notifier.handle(transition(advertiser_id="72").to_json(), "2-0")
    await notify.run_once()
    assert await sent(notify) == [("default", ["credit.exhausted firing 72"], False)]
    [record] = [d for d in await notify.deliveries.history(limit=10) if d.status == "silenced"]
    assert record.transitions == [firing]
    assert silence.id in record.note and "ana" in record.note
    # Its firing was never told, so its resolution is not either, even after the silence.
    clock.advance(timedelta(hours=3))
    await notify.notifier.handle(resolved(firing, clock.now).to_json(), "3-0")
    await notify.run_once()
    assert len(await sent(notify)) == 1
    # An expired silence silences nothing.
    await notify.silences.expire(silence.id, clock.now)
    await notify.notifier.handle(transition(starts_at=clock.now).to_json(), "4-0")
    await notify.run_once()
    assert len(await sent(notify)) == 2


NIGHTS = {
    "name": "nights",
    "time_zone": "Europe/Berlin",
    "times": [{"start": "22:00", "end": "07:00"}],
}


async def test_quiet_hours_hold_non_critical_alerts_until_they_end(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient
) -> None:
    night = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # 00:30 in Berlin
    clock = FakeClock(night)
    route = {
        "receiver": "default",
        "group_wait": 0,
        "group_interval": 0,
        "group_by": ["severity"],
        "mute_time_intervals": ["nights"],
    }
    notify = make(
        routed(settings, route, mute_time_intervals=[NIGHTS]), redis_client, outbound, clock
    )
    low = transition("credit.low", severity="warning", starts_at=night)
    await notify.notifier.handle(low.to_json(), "1-0")
    # Another account's: the same account's exhausted alert would inhibit its low one.
    await notify.notifier.handle(transition(starts_at=night, advertiser_id="72").to_json(), "2-0")
    await notify.run_once()
    assert [s[1] for s in await sent(notify)] == [["credit.exhausted firing 72"]]  # critical
    clock.now = datetime(2026, 11, 23, 5, 59, tzinfo=UTC)  # 06:59 in Berlin
    await notify.run_once()
    assert len(await sent(notify)) == 1
    clock.now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00: the quiet hours are over
    await notify.run_once()
    assert (await sent(notify))[-1][1] == ["credit.low firing 71"]


def test_muted_until_handles_weekdays_and_midnight() -> None:
    weekend = MuteTimeInterval.model_validate(
        {"name": "weekend", "time_zone": "UTC", "weekdays": ["saturday", "sunday"]}
    )
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert muted_until([weekend], saturday) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert muted_until([weekend], datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) is None
    nights = MuteTimeInterval.model_validate(NIGHTS)
    berlin_23h = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    assert muted_until([nights], berlin_23h) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("notify", "message"),
    [
        ({"route": {"receiver": "nobody"}}, "route.receiver: unknown receiver 'nobody'"),
        (
            {"receivers": CONSOLES, "route": {"routes": [{"receiver": "pagr"}]}},
            "route.routes.0.receiver: unknown receiver 'pagr'",
        ),
        (
            {"receivers": CONSOLES, "route": {"receiver": "pager", "match": {"kind": "credit.[x"}}},
            "bad glob 'credit.[x'",
        ),
        (
            {"receivers": CONSOLES, "route": {"receiver": "pager", "match": {"tema": "growth"}}},
            "route.match: unknown label 'tema'",
        ),
        ({"mute_time_intervals": [{"name": "n", "time_zone": "Mars/Olympus"}]}, "Mars/Olympus"),
        (
            {"receivers": CONSOLES, "route": {"receiver": "pager", "mute_time_intervals": ["x"]}},
            "unknown interval 'x'",
        ),
        ({"receivers": [CONSOLES[0], CONSOLES[0]]}, "receiver names must be unique: default"),
        (
            {"receivers": [{"type": "console", "name": "c", "templates": {"text": "{% if %}"}}]},
            "template 'text'",
        ),
        ({"receivers": [{"type": "pigeon", "name": "p"}]}, "pigeon"),
    ],
)
def test_bad_notify_settings_are_named(notify: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as failure:
        NotifySettings.model_validate(notify)
    assert message in str(failure.value)


async def test_a_resolved_transition_read_before_its_firing_still_reaches_the_receiver(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A peer reclaims the firing's stream entry late, after the resolved one was routed:
    the receiver still gets both, and the alert is not left firing."""
    order = notify_settings(
        settings,
        receivers=[{"type": "console", "name": "default"}],
        route={"receiver": "default", "group_wait": 0, "group_interval": 0},
    )
    notify = make(order, redis_client, outbound, clock)
    firing = transition()
    await notify.notifier.handle(resolved(firing, T0).to_json(), "2-0")
    await notify.notifier.handle(firing.to_json(), "1-0")
    await notify.run_once()
    clock.advance(timedelta(days=2))  # past repeat_interval: nothing still firing to repeat
    await notify.run_once()
    messages = [m for s in await sent(notify) for m in s[1]]
    assert sorted(messages) == ["credit.exhausted firing 71", "credit.exhausted resolved 71"]


async def test_a_batch_is_routed_in_stream_order_once_with_its_malformed_entry_set_aside(
    settings: Settings, redis_client: Redis, outbound: httpx.AsyncClient, clock: FakeClock
) -> None:
    route = {"receiver": "default", "group_by": ["..."], "group_wait": 0, "group_interval": 0}
    notify = make(routed(settings, route), redis_client, outbound, clock)
    await silence_from(
        notify.silences, {"advertiser_id": "73"}, now=T0, comment="known", author="ana"
    )
    firing = transition()
    batch = [
        (firing.to_json(), "1-0"),
        (b'{"alert_id": ', "2-0"),
        (transition(advertiser_id="72").to_json(), "3-0"),
        (resolved(firing, T0).to_json(), "4-0"),
        (transition(advertiser_id="73").to_json(), "5-0"),
    ]
    await notify.notifier.handle_batch(batch)
    await notify.run_once()
    # One message per alert group: 71's firing before its resolution, in one message.
    assert sorted(await sent(notify)) == [
        ("default", ["credit.exhausted firing 71", "credit.exhausted resolved 71"], False),
        ("default", ["credit.exhausted firing 72"], False),
    ]
    [silenced] = [d for d in await notify.deliveries.history(limit=10) if d.status == "silenced"]
    assert [t.advertiser_id for t in silenced.transitions] == ["73"]
    dead = await entries(redis_client, settings.streams.deadletter)
    assert [(f[b"source"], f[b"reason"]) for f in dead] == [(b"alerts", b"malformed")]
    # The same batch again (redelivered after a crash): nothing is sent a second time.
    await notify.notifier.handle_batch([e for e in batch if e[1] != "2-0"])
    await notify.run_once()
    assert len(await sent(notify)) == 2
