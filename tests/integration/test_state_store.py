"""Stored detector state in Redis: a legacy pydantic JSON state is upgraded in place, a corrupt
one starts over. (The encoding itself is tests/unit/test_state_codec.py.)"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from redis.asyncio import Redis

from config.settings import Settings
from service.detect.state import AccountState, Evaluation, StateStore
from tests.support import paths

LEGACY_ACCOUNT = (paths.FIXTURES / "state" / "pydantic_v1_account.json").read_bytes().strip()


async def test_the_store_upgrades_a_legacy_state_in_place_without_losing_it(
    settings: Settings, redis_client: Redis
) -> None:
    store = StateStore(redis_client, settings.streams, AccountState, "state")
    key = store.key("7300000000000000001")
    await redis_client.set(key, LEGACY_ACCOUNT)
    seen: list[AccountState | None] = []

    def step(state: AccountState | None) -> Evaluation[AccountState]:
        seen.append(state)
        assert state is not None
        return Evaluation(msgspec.structs.replace(state, valid_cash=Decimal("99.00")))

    assert await store.apply("7300000000000000001", step) == []
    assert seen[0] is not None and seen[0].credit_unused == {"welcome": Decimal("450.00")}
    raw = await redis_client.get(key)
    assert isinstance(raw, bytes) and not raw.startswith(b"{")
    stored = await store.load("7300000000000000001")
    assert stored is not None
    assert stored.valid_cash == Decimal("99.00")
    assert stored.transactions == seen[0].transactions
    assert stored.spend == seen[0].spend


async def test_a_corrupt_state_starts_over_instead_of_stopping_the_account(
    settings: Settings, redis_client: Redis
) -> None:
    store = StateStore(redis_client, settings.streams, AccountState, "state")
    await redis_client.set(store.key("42"), b"\x93\x01\x02")  # MessagePack, not a state
    assert await store.load("42") is None
