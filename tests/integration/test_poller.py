"""The poller on a real Redis: valid rows publish, invalid ones are set aside."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from redis.asyncio import Redis

from config.settings import PollSettings, Settings
from tests.support.balance_poll import poll_balances_once
from tests.support.streams import body, entries
from workers.contract import wire
from workers.contract.snapshots import AccountBalanceSnapshot, SourceStatusSnapshot, parse_snapshot
from workers.poller import BalancePoller, schedule, sync_polls
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

    async def advertiser_balance_pages(self, bc_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        yield await self.advertiser_balances(bc_id)

    async def advertiser_balance(self, bc_id: str, advertiser_id: str) -> list[dict[str, Any]]:
        rows = await self.advertiser_balances(bc_id)
        return [r for r in rows if advertiser_id in str(r.get("advertiser_id"))][:1]


async def poll_once(
    settings: Settings, redis: Redis, api: FakeApi
) -> tuple[Any, list[dict[bytes, bytes]], list[dict[bytes, bytes]]]:
    return (
        await poll_balances_once(api, "7001", settings, redis, seen_at=SEEN_AT),
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


class CountingPublisher:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, snapshots: list[Any]) -> int:
        self.published += len(snapshots)
        return len(snapshots)


async def _sweeps_within(settings: Settings, api: FakeApi, seconds: float) -> int:
    """How many balance sweeps one scheduler makes of one business center in ``seconds``."""
    calls = 0
    inner = api.advertiser_balances

    async def counted(bc_id: str) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        return await inner(bc_id)

    api.advertiser_balances = counted  # type: ignore[method-assign]

    async def reject(**_: Any) -> None:
        return None

    poller = BalancePoller(api, CountingPublisher(), reject=reject, clock=lambda: SEEN_AT)
    scheduler = schedule([], settings)
    sync_polls(scheduler, [(poller, settings.poll.balance_interval_s)], ["7001"], settings)
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        scheduler.shutdown(wait=False)
    return calls


async def test_balances_are_swept_back_to_back_when_budget_is_left(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"poll": PollSettings(balance_interval_s=300, balance_min_gap_s=0.05)}
    )
    # Fixed intervals would sweep once in these seconds; continuous sweeps go on and on.
    assert await _sweeps_within(settings, FakeApi([row("71")]), 3.0) >= 3


async def test_a_failed_sweep_waits_for_its_interval_not_the_gap(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"poll": PollSettings(balance_interval_s=300, balance_min_gap_s=0.05)}
    )
    failing = FakeApi(TransientError("down", endpoint="/advertiser/balance/get/"))
    assert await _sweeps_within(settings, failing, 3.0) == 1
