"""Signed webhook delivery against a real local HTTP receiver that verifies signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from config.settings import Settings, WebhookSubscriber
from service.alerts import AlertTransition
from service.deadletter import DeadLetters
from service.deliver.consumer import Notifier
from service.deliver.receivers import DeliveryFailed
from service.deliver.webhook import WebhookReceiver, message_id, retry_after_s
from tests.receiver import SECRET, Reply, WebhookSink
from tests.streams import entries
from workers.snapshots import AccountBalanceSnapshot, BalanceInfo

OBSERVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def transition(kind: str = "credit.exhausted") -> AlertTransition:
    snapshot = AccountBalanceSnapshot(
        bc_id="70",
        advertiser_id="71",
        advertiser_name="Draining Shop",
        currency="USD",
        balances=BalanceInfo(),
        observed_at=OBSERVED,
    )
    return AlertTransition.for_snapshot(
        snapshot,
        kind=kind,
        status="firing",
        severity="critical",
        starts_at=OBSERVED,
        summary="Ad credit is used up.",
        values={"valid_grant_balance": Decimal("0"), "valid_cash_balance": Decimal("12.5")},
    )


class Sleeps:
    """An injected sleep that records delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def receiver(
    url: str,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    *,
    kinds: list[str] | None = None,
    timeout_s: float = 15.0,
) -> WebhookReceiver:
    subscriber = WebhookSubscriber(
        name="ops", url=url, secret=SecretStr(SECRET), kinds=kinds or ["*"]
    )
    return WebhookReceiver(
        subscriber, http, max_attempts=4, retry_base_s=1.0, timeout_s=timeout_s, sleep=sleeps
    )


async def test_body_and_signature_follow_the_contract(http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    async with WebhookSink() as sink:
        await receiver(sink.url, http, sleeps).send(transition(), "al_1:firing:webhook:ops")
    [got] = sink.received
    assert got.verified
    assert got.headers["webhook-id"] == message_id("al_1:firing:webhook:ops")
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
            "summary": "Ad credit is used up.",
            "values": {"valid_grant_balance": "0.00", "valid_cash_balance": "12.50"},
            "starts_at": "2026-11-22T12:00:00+00:00",
            "ends_at": None,
            "observed_at": "2026-11-22T12:00:00+00:00",
        },
    }
    assert sleeps.delays == []


async def test_a_wrong_secret_does_not_verify(http: httpx.AsyncClient) -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    async with WebhookSink(secret=other) as sink:
        await receiver(sink.url, http, Sleeps()).send(transition(), "d1")
    assert [r.verified for r in sink.received] == [False]


async def test_server_errors_are_retried_with_the_same_webhook_id(
    http: httpx.AsyncClient,
) -> None:
    sleeps = Sleeps()
    async with WebhookSink([Reply(500), Reply(503)]) as sink:
        await receiver(sink.url, http, sleeps).send(transition(), "d2")
    assert len(sink.received) == 3
    assert len({r.headers["webhook-id"] for r in sink.received}) == 1
    assert all(r.verified for r in sink.received)
    # Exponential backoff with jitter of +-50 %: ~1 s, then ~2 s.
    assert len(sleeps.delays) == 2
    assert 0.5 <= sleeps.delays[0] <= 1.5
    assert 1.0 <= sleeps.delays[1] <= 3.0


async def test_429_honours_retry_after(http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    async with WebhookSink([Reply(429, {"Retry-After": "7"})]) as sink:
        await receiver(sink.url, http, sleeps).send(transition(), "d3")
    assert len(sink.received) == 2
    assert sleeps.delays == [7.0]


async def test_410_is_final(http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    async with WebhookSink([Reply(410)]) as sink:
        with pytest.raises(DeliveryFailed, match="HTTP 410") as failure:
            await receiver(sink.url, http, sleeps).send(transition(), "d4")
    assert failure.value.attempts == 1
    assert len(sink.received) == 1
    assert sleeps.delays == []


async def test_timeouts_are_retried_then_give_up(http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    slow = [Reply(200, delay_s=0.5) for _ in range(4)]
    async with WebhookSink(slow) as sink:
        with pytest.raises(DeliveryFailed, match="timeout") as failure:
            await receiver(sink.url, http, sleeps, timeout_s=0.1).send(transition(), "d5")
    assert failure.value.attempts == 4
    assert len(sleeps.delays) == 3


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert retry_after_s("30", now) == 30.0
    assert retry_after_s("Sun, 22 Nov 2026 12:00:45 GMT", now) == 45.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


async def test_notifier_sends_each_delivery_once_and_dead_letters_failures(
    settings: Settings, redis_client: Redis, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    async with WebhookSink() as good, WebhookSink([Reply(400), Reply(400)]) as bad:
        receivers = [
            receiver(good.url, http, sleeps),
            WebhookReceiver(
                WebhookSubscriber(name="broken", url=bad.url, secret=SecretStr(SECRET)),
                http,
                max_attempts=3,
                retry_base_s=1.0,
                sleep=sleeps,
            ),
            receiver(good.url, http, sleeps, kinds=["ladder.*"]),  # wants none of these
        ]
        dead_letters = DeadLetters(redis_client, settings.streams)
        notifier = Notifier(redis_client, receivers, dead_letters, settings.streams)
        payload = transition().to_json()
        await notifier.handle(payload, "1-0")
        await notifier.handle(payload, "1-0")  # the same entry, redelivered
    assert len(good.received) == 1
    assert len(bad.received) == 2  # 400 is final; the redelivery tried once more
    dead = await entries(redis_client, settings.streams.deadletter)
    assert [fields[b"source"] for fields in dead] == [b"deliveries", b"deliveries"]
    assert b"HTTP 400" in dead[0][b"error"]
