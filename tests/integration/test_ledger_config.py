"""The declared ledger: validated like settings, stored in Redis over the config, and the
demo scenario's ledger showing every alert kind (in-process, fast)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from config.ledger import Credit
from config.settings import DetectSettings, Settings, SettingsError, load_settings
from service.cli import DEMO_DETECT
from service.detect.ledger_store import ConfigLedger, RedisLedger, index_saved_ledgers
from tests.support.pipeline import Pipeline
from workers.sandbox import DEMO_SCENARIO, load_scenario

CREDIT = {
    "id": "c1",
    "advertiser_id": "71",
    "type": "free",
    "amount": "100.00",
    "currency": "USD",
    "valid_from": "2026-11-01",
    "valid_to": "2026-11-30",
}


def test_a_bad_credit_is_named_by_its_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        "credits:\n"
        "  - {id: a, advertiser_id: '71', type: free, amount: '10', currency: USD,\n"
        "     valid_from: 2026-11-01, valid_to: 2026-11-30}\n"
        "  - {id: b, advertiser_id: '71', type: free, amount: '10', currency: USD,\n"
        "     valid_from: 2026-11-01, valid_to: yesterday}\n"
    )
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match=r"credits\.1\.valid_to"):
        load_settings()


def test_dates_mean_whole_days_and_discounts_need_terms() -> None:
    credit = Credit.model_validate(CREDIT)
    assert credit.valid_from == datetime(2026, 11, 1, tzinfo=UTC)
    assert credit.valid_to == datetime(2026, 12, 1, tzinfo=UTC)  # the end of 30 November
    with pytest.raises(ValueError, match="discount terms"):
        Credit.model_validate({**CREDIT, "type": "discount"})


async def test_saved_entries_win_over_the_config_and_a_bad_one_is_skipped(
    settings: Settings, redis_client: Redis
) -> None:
    base = ConfigLedger([Credit.model_validate(CREDIT)], [])
    store = RedisLedger(redis_client, settings.streams, base)
    assert [c.amount for c in (await store.for_advertiser("71")).credits] == [100]
    await store.put_credit(Credit.model_validate({**CREDIT, "amount": "150.00"}))
    await redis_client.hset(store.key("71"), "credit:broken", b"{not json")
    ledger = await store.for_advertiser("71")
    assert [(c.id, c.amount) for c in ledger.credits] == [("c1", Decimal(150))]
    assert await store.delete("71", "credit", "c1")
    assert [c.amount for c in (await store.for_advertiser("71")).credits] == [100]


async def test_a_ledger_saved_before_the_index_is_read_before_and_after_its_migration(
    settings: Settings, redis_client: Redis
) -> None:
    """A release before the ledger index saved the hash alone: it is read while the index is
    not marked complete, the migration puts it in the index (once), and it is read after."""
    old = RedisLedger(redis_client, settings.streams, ConfigLedger([], []))
    saved = Credit.model_validate({**CREDIT, "amount": "150.00"}).model_dump_json()
    await redis_client.hset(old.key("71"), "credit:c1", saved)
    assert [c.amount for c in (await old.for_advertiser("71")).credits] == [150]
    assert await index_saved_ledgers(redis_client, settings.streams) == 1
    assert await redis_client.hexists(old.index_key, "71")
    assert await index_saved_ledgers(redis_client, settings.streams) == 0  # marked: once
    store = RedisLedger(redis_client, settings.streams, ConfigLedger([], []))
    ledgers = await store.for_advertisers(["72", "71"])
    assert [c.amount for c in ledgers["71"].credits] == [150]
    assert ledgers["72"].credits == ()
    # Saved after the migration: the index names it (put writes both in one transaction).
    await store.put_credit(Credit.model_validate({**CREDIT, "advertiser_id": "72"}))
    assert [c.amount for c in (await store.for_advertiser("72")).credits] == [100]


async def test_the_migration_indexes_every_older_ledger_past_one_scan_page(
    settings: Settings, redis_client: Redis
) -> None:
    """Ledgers are indexed a page at a time: 2,500 (pages of 1,000) all join, and one that is
    already indexed keeps its token."""
    store = RedisLedger(redis_client, settings.streams, ConfigLedger([], []))
    saved = Credit.model_validate(CREDIT).model_dump_json()
    async with redis_client.pipeline(transaction=False) as pipe:
        for n in range(2_500):
            pipe.hset(store.key(str(80_000 + n)), "credit:c1", saved)
        await pipe.execute()
    await redis_client.hset(store.index_key, "80000", "kept")
    assert await index_saved_ledgers(redis_client, settings.streams) == 2_499
    assert await redis_client.hlen(store.index_key) == 2_500
    assert await redis_client.hget(store.index_key, "80000") == b"kept"


async def test_the_demo_scenario_shows_every_kind() -> None:
    """The demo's story, polled every 2 simulated hours for 90 hours, in one process."""
    pipe = Pipeline(load_scenario(DEMO_SCENARIO), DetectSettings(**DEMO_DETECT))
    try:
        await pipe.run(hours=90, every_h=2)
    finally:
        await pipe.aclose()
    seen = {kind for kind, _ in pipe.kinds()}
    assert seen >= {
        "credit.low",
        "credit.exhausted",
        "credit.depletion_forecast",
        "credit.expiring",
        "credit.expired",
        "credit.frozen",
        "credit.issued",
        "ladder.tier_reached",
        "ladder.at_risk",
        "ladder.window_closing",
        "discount.cap_near",
        "discount.cap_reached",
        "cash.low_after_credit",
        "reconcile.mismatch",
        "source.auth_failed",
    }, seen  # data.stale runs on the wall clock: see test_lifecycle_end_to_end
    assert pipe.kinds("7100000000002") == [], "Steady Brand stays quiet"
