"""Signed webhooks with durable retries, against a real local receiver that verifies signatures.

Time is a fake clock: the tests move it to the next retry instead of waiting for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.deliveries import message_id
from service.deliver.http_status import MAX_RETRY_AFTER_S, retry_after_s
from service.deliver.sender import ATTEMPTS_AT_ONCE, chains
from tests.support.notify import (
    T0,
    Announced,
    NotifyWith,
    notify_settings,
    pipeline,
    resolved,
    run_rounds,
    transition,
)
from tests.support.receiver import SECRET, Reply, WebhookSink
from tests.support.streams import entries


def hook(url: str, **extra: object) -> dict[str, object]:
    return {"type": "webhook", "name": "ops", "url": url, "secret": SECRET, **extra}


def at_once(settings: Settings, url: str, **extra: object) -> Settings:
    """One webhook receiver that every alert goes to, without grouping delays."""
    return notify_settings(
        settings,
        receivers=[hook(url, **extra)],
        route={"receiver": "ops", "group_wait": 0, "group_interval": 0, "group_by": ["..."]},
    )


async def test_body_and_signature_follow_the_contract(
    settings: Settings, notify_with: NotifyWith
) -> None:
    async with WebhookSink() as sink:
        notify = notify_with(at_once(settings, sink.url))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
    [got] = sink.received
    assert got.verified
    assert got.headers["webhook-id"] == message_id(f"ops:{transition().transition_id}")
    assert got.payload == {
        "type": "credit.exhausted",
        "timestamp": "2026-11-22T12:00:00+00:00",
        "data": {
            "alert_id": transition().alert_id,
            "status": "firing",
            "severity": "critical",
            "advertiser_id": "71",
            "advertiser_name": "Draining Shop",
            "bc_id": "70",
            "currency": "USD",
            "summary": "Ad credit of Draining Shop is at 0 USD.",
            "values": {"valid_grant_balance": "0.00", "valid_cash_balance": "12.50"},
            "starts_at": "2026-11-22T12:00:00+00:00",
            "ends_at": None,
            "observed_at": "2026-11-22T12:00:00+00:00",
        },
    }


async def test_a_wrong_secret_does_not_verify(settings: Settings, notify_with: NotifyWith) -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    async with WebhookSink(secret=other) as sink:
        notify = notify_with(at_once(settings, sink.url))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
    assert [r.verified for r in sink.received] == [False]


async def test_a_500_is_retried_on_the_schedule_with_the_same_webhook_id(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with WebhookSink([Reply(500), Reply(503)]) as sink:
        notify = notify_with(at_once(settings, sink.url))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        assert len(sink.received) == 1
        clock.advance(4.9)  # the first retry is due 5 s later (no jitter in these settings)
        await notify.run_once()
        assert len(sink.received) == 1
        clock.advance(0.1)
        await notify.run_once()
        assert len(sink.received) == 2
        clock.advance(60)
        await notify.run_once()
        await notify.run_once()  # delivered: nothing more to send
    assert len(sink.received) == 3
    assert len({r.headers["webhook-id"] for r in sink.received}) == 1
    assert all(r.verified for r in sink.received)
    [delivery] = await notify.deliveries.history(limit=10)
    assert delivery.status == "delivered"
    assert [(a.result, a.status_code) for a in delivery.attempts] == [
        ("retry", 500),
        ("retry", 503),
        ("delivered", 200),
    ]
    assert [a.at for a in delivery.attempts] == [T0, T0 + timedelta(seconds=5), clock.now]


async def test_429_and_its_retry_after_are_honoured(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with WebhookSink([Reply(429, {"Retry-After": "120"})]) as sink:
        notify = notify_with(at_once(settings, sink.url))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        clock.advance(60)  # the schedule alone would have retried after 5 s
        await notify.run_once()
        assert len(sink.received) == 1
        clock.advance(60)
        await notify.run_once()
    assert len(sink.received) == 2
    [delivery] = await notify.deliveries.history(limit=1)
    assert delivery.status == "delivered"
    assert delivery.attempts[0].error == "HTTP 429"


async def test_410_disables_the_endpoint_and_raises_an_ops_alert(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    announced = Announced()
    async with WebhookSink([Reply(410)]) as sink:
        notify = notify_with(at_once(settings, sink.url), announced)
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        later = transition("credit.low", starts_at=T0 + timedelta(minutes=1))
        await notify.notifier.handle(later.to_json(), "2-0")
        clock.advance(3600)
        await notify.run_once()
    assert len(sink.received) == 1  # nothing more once it said 410
    assert await notify.disabled.is_disabled("ops")
    [ops] = announced.alerts
    assert (ops.kind, ops.status, ops.severity) == ("ops.receiver_disabled", "firing", "critical")
    assert "ops" in ops.summary
    [delivery] = await notify.deliveries.history(limit=10, failed_only=True)
    assert delivery.attempts[-1].result == "gone"
    dead = await entries(redis_client, settings.streams.deadletter)
    assert [f[b"source"] for f in dead] == [b"deliveries"]
    assert b"HTTP 410" in dead[0][b"error"]


async def test_timeouts_are_retried_until_the_last_attempt_then_dead_lettered(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    # Generous margins: under load the request must still reach the receiver before our
    # timeout, and the answer must still come after it.
    slow = [Reply(200, delay_s=2.0) for _ in range(3)]
    async with WebhookSink(slow) as sink:
        notify = notify_with(at_once(settings, sink.url, timeout_s=0.5))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await run_rounds(notify, clock, 3, 60)  # the schedule has two waits: three attempts
        await notify.run_once()
    assert len(sink.received) == 3
    [delivery] = await notify.deliveries.history(limit=1, failed_only=True)
    assert delivery.status == "failed"
    assert [a.error for a in delivery.attempts] == ["timeout after 0.5 s"] * 3
    dead = await entries(redis_client, settings.streams.deadletter)
    assert b"after 3 attempt(s)" in dead[0][b"error"]
    assert await notify.deliveries.queue_size() == 0


async def test_a_redelivered_stream_entry_is_sent_once(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with WebhookSink() as sink:
        notify = notify_with(at_once(settings, sink.url))
        payload = transition().to_json()
        await notify.notifier.handle(payload, "1-0")
        await notify.run_once()
        await notify.notifier.handle(payload, "1-0")  # the same entry, reclaimed
        clock.advance(10)
        await notify.run_once()
    assert len(sink.received) == 1


async def test_a_webhook_routed_by_kind_gets_only_that_kind(
    settings: Settings, notify_with: NotifyWith
) -> None:
    """What the retired ``notify.webhooks`` form did (``kinds``), declared the documented way."""
    async with WebhookSink() as sink:
        hook, route = sink.receiver_and_route("low-only", kinds=["credit.low"])
        routed = notify_settings(settings, receivers=[hook], route=route)
        notify = notify_with(routed)
        # Another account's exhausted alert: the same account's would inhibit its low one.
        exhausted = transition("credit.exhausted", advertiser_id="72")
        await notify.notifier.handle(exhausted.to_json(), "1-0")
        await notify.notifier.handle(transition("credit.low").to_json(), "2-0")
        await notify.run_once()
    assert [p["type"] for p in sink.payloads()] == ["credit.low"]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30.0
    assert retry_after_s("Sun, 22 Nov 2026 12:00:45 GMT", now) == 45.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("²", None),  # str.isdigit() says yes, float() says no
        ("٣٠", None),  # Arabic-Indic 30: int() reads it, HTTP does not
        ("-5", None),
        ("1e9", None),
        ("9" * 5000, MAX_RETRY_AFTER_S),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
    ],
)
def test_a_junk_retry_after_is_ignored_or_clamped(header: str, expected: float | None) -> None:
    assert retry_after_s(header, datetime(2026, 11, 22, 12, 0, tzinfo=UTC)) == expected


async def test_a_junk_retry_after_from_a_receiver_is_a_plain_retry(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    replies = [Reply(503, {"Retry-After": "²"}), Reply(429, {"Retry-After": "9" * 400})]
    async with WebhookSink(replies) as sink:
        notify = notify_with(at_once(settings, sink.url))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        clock.advance(10)  # "²" is no Retry-After: the schedule's 5 s (+-20 %) applies
        await notify.run_once()
        assert len(sink.received) == 2
        clock.advance(86_400 + 1)  # the huge one is held to max_retry_after (24 h)
        await notify.run_once()
    [delivery] = [d for d in await notify.deliveries.history(limit=10) if not d.repeat]
    assert delivery.status == "delivered"
    assert [a.error for a in delivery.attempts] == ["HTTP 503", "HTTP 429", None]


def test_an_episodes_notifications_go_out_in_order_and_others_alongside() -> None:
    claimed = [
        "hooks:al_1:resolved",
        "hooks:al_2:firing",
        "hooks:al_1:firing",
        "ops:al_1:firing",
        "hooks:al_3:firing:repeat-2",
        "hooks:al_3:resolved",
        "slack:grp_9:1",
    ]
    assert chains(claimed) == [
        ["hooks:al_1:firing", "hooks:al_1:resolved"],
        ["hooks:al_2:firing"],
        ["ops:al_1:firing"],
        ["hooks:al_3:firing:repeat-2", "hooks:al_3:resolved"],
        ["slack:grp_9:1"],
    ]


async def test_a_delivery_whose_lease_ran_out_waiting_for_its_receiver_is_left_to_the_next_round(
    settings: Settings, redis_client: Redis, clock: FakeClock
) -> None:
    # One more delivery than a receiver takes at once: the last waits for a free turn, and
    # the first answer comes after the lease (a slow receiver, a stalled loop). By the time
    # the last gets its turn it is due again and may be claimed elsewhere: not sent here.
    lease = settings.notify.delivery_lease
    stalled = False

    async def stall(response: httpx.Response) -> None:
        nonlocal stalled
        if not stalled:
            stalled = True
            clock.advance(lease + timedelta(seconds=1))

    async with WebhookSink() as sink, httpx.AsyncClient(event_hooks={"response": [stall]}) as http:
        notify = pipeline(at_once(settings, sink.url), redis_client, http, clock)
        for n in range(ATTEMPTS_AT_ONCE + 1):
            alert = transition(advertiser_id=f"7{n:03d}")
            await notify.notifier.handle(alert.to_json(), f"{n + 1}-0")
        await notify.run_once()
        assert len(sink.received) == ATTEMPTS_AT_ONCE
        await notify.run_once()  # the next round claims the one left
    ids = [r.headers["webhook-id"] for r in sink.received]
    assert len(ids) == len(set(ids)) == ATTEMPTS_AT_ONCE + 1


async def test_a_delivery_whose_lease_ran_out_in_its_chain_is_left_to_the_next_round(
    settings: Settings, redis_client: Redis, clock: FakeClock
) -> None:
    # An episode's firing and resolved are claimed together and go out in order. The firing
    # attempt outlasts the lease (a slow receiver, a stalled loop), so the resolved one is due
    # again and may be claimed by another round or replica: this round must not send it too.
    lease = settings.notify.delivery_lease

    async def stall(response: httpx.Response) -> None:
        clock.advance(lease + timedelta(seconds=1))

    async with WebhookSink() as sink, httpx.AsyncClient(event_hooks={"response": [stall]}) as http:
        notify = pipeline(at_once(settings, sink.url), redis_client, http, clock)
        firing = transition()
        await notify.notifier.handle(firing.to_json(), "1-0")
        await notify.notifier.handle(resolved(firing, T0 + timedelta(minutes=1)).to_json(), "2-0")
        await notify.run_once()
        assert [p["data"]["status"] for p in sink.payloads()] == ["firing"]
        await notify.run_once()  # the next round: the resolved one is due and claimed
        await notify.run_once()  # and nothing is left
    assert [p["data"]["status"] for p in sink.payloads()] == ["firing", "resolved"]
