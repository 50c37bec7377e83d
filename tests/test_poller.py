"""The poller on a real Redis: valid rows publish, invalid ones are set aside."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from config.settings import Settings
from service.deadletter import DeadLetters
from tests.streams import body, entries
from workers import wire
from workers.poller import BalancePoller
from workers.publish import SnapshotPublisher
from workers.snapshots import AccountBalanceSnapshot, SourceStatusSnapshot, parse_snapshot
from workers.tiktok import TransientError

SEEN_AT = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def row(advertiser_id: Any, grant: Any = Decimal("12.30"), currency: Any = "USD") -> dict[str, Any]:
    return {
        "advertiser_id": advertiser_id,
        "advertiser_name": f"Shop {advertiser_id}",
        "advertiser_status": "SHOW_ACCOUNT_STATUS_APPROVED",
        "currency": currency,
        "timezone": "Europe/Berlin",
        "balance_info": {"grant_balance": grant, "valid_grant_balance": grant},
    }


class FakeApi:
    def __init__(self, rows: list[dict[str, Any]] | Exception) -> None:
        self.rows = rows

    async def advertiser_balances(self, bc_id: str) -> list[dict[str, Any]]:
        if isinstance(self.rows, Exception):
            raise self.rows
        return self.rows


async def poll_once(
    settings: Settings, redis: Redis, api: FakeApi
) -> tuple[Any, list[dict[bytes, bytes]], list[dict[bytes, bytes]]]:
    broker = RedisBroker(settings.redis_url or "")
    await broker.connect()
    try:
        poller = BalancePoller(
            api,
            SnapshotPublisher(broker, redis, settings.streams),
            reject=DeadLetters(redis, settings.streams).put,
            clock=lambda: SEEN_AT,
        )
        result = await poller.poll("7001")
    finally:
        await broker.stop()
    return (
        result,
        await entries(redis, settings.streams.snapshots),
        await entries(redis, settings.streams.deadletter),
    )


async def test_one_bad_account_is_set_aside_and_the_others_publish(
    settings: Settings, redis_client: Redis
) -> None:
    rows = [
        row("71"),
        row("72", grant="lots"),  # not a number
        row("73", currency=None),  # missing currency
        row("74", grant=Decimal("-5")),  # a negative grant balance is impossible
        row("75", grant=Decimal("1e30")),  # absurdly large
        row("76", grant=Decimal("0.10")),
    ]
    with structlog.testing.capture_logs() as logs:
        result, published, dead = await poll_once(settings, redis_client, FakeApi(rows))
    assert (result.published, result.rejected) == (3, 4)
    parsed = [parse_snapshot(body(fields)) for fields in published]
    snapshots = [s for s in parsed if isinstance(s, AccountBalanceSnapshot)]
    assert [s.advertiser_id for s in snapshots] == ["71", "76"]
    # A first good poll also says the source works (it resolves an earlier auth alert).
    assert [(s.kind, s.status) for s in parsed if isinstance(s, SourceStatusSnapshot)] == [
        ("source_status", "ok")
    ]
    assert snapshots[0].balances.valid_grant_balance == Decimal("12.30")
    assert snapshots[1].balances.valid_grant_balance == Decimal("0.10")
    assert snapshots[0].observed_at == SEEN_AT
    assert snapshots[0].timezone == "Europe/Berlin"
    assert [f[b"entry_id"] for f in dead] == [b"7001:72", b"7001:73", b"7001:74", b"7001:75"]
    assert wire.loads(dead[0][b"payload"])["advertiser_id"] == "72"
    rejected = [e for e in logs if e["event"] == "poll.row_rejected"]
    assert [e["advertiser_id"] for e in rejected] == ["72", "73", "74", "75"]


async def test_an_api_failure_fails_that_poll_only(settings: Settings, redis_client: Redis) -> None:
    failure = TransientError("HTTP 503 after 6 attempts", endpoint="/advertiser/balance/get/")
    with structlog.testing.capture_logs() as logs:
        result, published, dead = await poll_once(settings, redis_client, FakeApi(failure))
    assert result is None
    assert published == []
    assert dead == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["poll.failed"]
