"""The status list's rows on a real Redis: the detectors write each account's list row with its
state, and the list served after a fresh start reads those rows, not the states.

- the detector (wired as ``service/roles.py`` wires it) writes a row per account in the same
  commit as the state; the rows are the read model's own figures (``/v1/accounts``);
- a fresh app lists every account from the rows alone, with every state unreadable;
- a row follows its account's next commit, and a ledger edited through the API since;
- states committed by an older release (no row, no version) are listed from their state.

The states are the status page tests' accounts (``tests.support.status_accounts``), as of
their one fixed clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from config.ledger import Credit
from config.settings import DetectSettings, Settings
from service.deadletter import DeadLetters
from service.detect.accounts import ACCOUNT_NAMESPACE, AccountsReader, AccountView
from service.detect.ledger import AccountLedger
from service.detect.ledger_store import ConfigLedger, RedisLedger
from service.detect.list_row import ListRow, decode_row, encode_row, row_of
from service.detect.state import AccountState, Evaluation, StateStore, encode_state
from service.http import status_page
from service.http.list_rows import ListRows
from service.roles import _detection
from tests.support.api import AUTH, api_settings, app_client
from tests.support.snapshots import grant_snapshot
from tests.support.status_accounts import ACCOUNTS, ALPHA, BETA, GAMMA, NOW, WELCOME, listed, state
from workers.contract.snapshots import AccountBalanceSnapshot


class CountingReader(AccountsReader):
    """The real reader, noting which advertisers' full states it was asked for."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        super().__init__(redis, settings)
        self.read: list[set[str]] = []

    async def states(self, advertiser_ids: Sequence[str]) -> list[AccountState]:
        self.read.append(set(advertiser_ids))
        return await super().states(advertiser_ids)


def snapshot(advertiser_id: str, name: str, valid: int, minutes: int) -> AccountBalanceSnapshot:
    observed_at = NOW + timedelta(minutes=minutes)
    return grant_snapshot("b1", advertiser_id, str(valid), observed_at, name=name)


async def stored_rows(redis: Redis, settings: Settings) -> dict[str, ListRow]:
    raws = await redis.hgetall(settings.streams.keyspace.rows_key("state", 0))
    rows = {(k.decode() if isinstance(k, bytes) else k): decode_row(v) for k, v in raws.items()}
    assert all(rows.values()), rows
    return {k: v for k, v in rows.items() if v is not None}


async def commit(store: StateStore[AccountState], states: Sequence[AccountState]) -> None:
    await store.apply_many(
        {s.advertiser_id: (lambda _, s=s: Evaluation(s)) for s in states}  # type: ignore[misc]
    )


def figures(view: AccountView) -> tuple[object, ...]:
    """What a row and a view must agree on."""
    return (
        view.advertiser_name,
        view.bc_id,
        view.currency,
        Decimal(view.balances.valid_grant),
        Decimal(view.balances.frozen_grant),
        Decimal(view.burn_rate_per_day) if view.burn_rate_per_day else None,
        view.projected_exhaustion_at,
        view.next_expiry_at,
        sum((Decimal(c.projected_forfeit or 0) for c in view.credits), Decimal(0)),
        [a.alert_id for a in view.active_alerts],
    )


def row_figures(row: ListRow) -> tuple[object, ...]:
    return (
        row.advertiser_name,
        row.bc_id,
        row.currency,
        row.valid_grant,
        row.frozen_grant,
        row.burn_per_day,
        row.runs_out_at,
        row.next_expiry_at,
        row.projected_forfeit,
        [alert_id for alert_id, _, _ in row.alerts],
    )


async def test_the_list_after_a_fresh_start_reads_the_rows_the_detector_wrote(
    settings: Settings, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = api_settings(settings)
    detector, _ = _detection(wired, redis_client, DeadLetters(redis_client, wired.streams))
    shops = {ALPHA: "Alpha Shop", BETA: "Beta Store", GAMMA: "Gamma GmbH"}
    batch = [
        (snapshot(a, name, valid=100 * (n + 1), minutes=0).to_json(), f"{n + 1}-0")
        for n, (a, name) in enumerate(shops.items())
    ]
    await detector.handle_batch(batch)

    # One row per account, committed with its state: the read model's figures exactly.
    rows = await stored_rows(redis_client, wired)
    assert set(rows) == set(shops)
    reader = AccountsReader(redis_client, wired)
    for view in await reader.all(history=False):
        assert row_figures(rows[view.advertiser_id]) == figures(view)
    assert rows[BETA].valid_grant == Decimal(200)

    # The next commit of an account rewrites its row.
    await detector.handle_batch([(snapshot(BETA, "Beta Store", 40, minutes=5).to_json(), "9-0")])
    after = await stored_rows(redis_client, wired)
    assert after[BETA].valid_grant == Decimal(40)
    assert after[BETA].version != rows[BETA].version
    assert after[ALPHA] == rows[ALPHA]

    # Every state unreadable: a freshly started app still lists every account, from the rows.
    for advertiser_id in shops:
        await redis_client.set(wired.streams.key(ACCOUNT_NAMESPACE, advertiser_id), b"{broken")
    monkeypatch.setattr(status_page, "LIST_TTL_S", 0.0)
    async with app_client(wired, redis_client) as http:
        response = await http.get("/")
        assert response.status_code == 200, response.text
        assert listed(response.text) == [ALPHA, BETA, GAMMA]
        assert "40.00 USD" in response.text  # Beta's grant balance, from its row
        assert listed((await http.get("/", params={"q": "gamma"})).text) == [GAMMA]
        runway = (await http.get("/", params={"sort": "runway"})).text
        assert sorted(listed(runway)) == [ALPHA, BETA, GAMMA]
        # ... and the account that commits again shows its new figures.
        await detector.handle_batch(
            [(snapshot(BETA, "Beta Store", 7, minutes=10).to_json(), "10-0")]
        )
        text = (await http.get("/", params={"q": "beta"})).text
        assert listed(text) == [BETA]
        assert "7.00 USD" in text
        # The full read model has only Beta's state to read: the list did not need them.
        accounts = (await http.get("/v1/accounts", headers=AUTH)).json()
        assert [a["advertiser_id"] for a in accounts] == [BETA]


async def test_rows_follow_ledger_edits_and_are_made_once_for_states_without_one(
    settings: Settings, redis_client: Redis
) -> None:
    # Committed by a release that kept versions but no rows: the reader makes them, once.
    plain = StateStore(redis_client, settings.streams, AccountState, ACCOUNT_NAMESPACE)
    await commit(plain, ACCOUNTS)
    ledger = RedisLedger(redis_client, settings.streams, ConfigLedger([], []))
    await ledger.put_credit(WELCOME)
    reader = CountingReader(redis_client, settings)
    rows = ListRows(reader, redis_client, settings)

    listed_rows = await rows.refresh()
    assert [r.advertiser_id for r in listed_rows] == [ALPHA, BETA, GAMMA]  # by name
    assert reader.read == [{ALPHA, BETA, GAMMA}]
    views = {v.advertiser_id: v for v in await reader.all(history=False)}
    for row in listed_rows:
        assert row_figures(row) == figures(views[row.advertiser_id])
    alpha = listed_rows[0]
    assert alpha.projected_forfeit == Decimal("40.00")
    assert alpha.expiring_soon > 0  # Welcome expires within 7 days
    # Stored back: a second app (a restart) reads no state at all.
    assert set(await stored_rows(redis_client, settings)) == {ALPHA, BETA, GAMMA}
    again = CountingReader(redis_client, settings)
    assert await ListRows(again, redis_client, settings).refresh() == listed_rows
    assert again.read == []

    # Nothing changed: nothing read. Gamma gets a credit declared through the API: only
    # Gamma's row is made again, from its state, with the new ledger.
    reader.read.clear()
    assert await rows.refresh() == listed_rows
    gamma_credit = Credit.model_validate(
        WELCOME.model_dump()
        | {"id": "gamma-500", "advertiser_id": GAMMA, "currency": "EUR", "amount": Decimal(500)}
        | {"valid_to": NOW + timedelta(days=3)}
    )
    await ledger.put_credit(gamma_credit)
    by_id = {r.advertiser_id: r for r in await rows.refresh()}
    assert reader.read == [{GAMMA}]
    assert by_id[GAMMA].next_expiry_at == NOW + timedelta(days=3)
    gamma_view = await reader.get(GAMMA)
    assert gamma_view is not None
    assert row_figures(by_id[GAMMA]) == figures(gamma_view)
    # ... and deleted again: the row follows (the ledger index changed its token).
    assert await ledger.delete(GAMMA, "credit", "gamma-500")
    by_id = {r.advertiser_id: r for r in await rows.refresh()}
    assert by_id[GAMMA].next_expiry_at is None
    assert reader.read == [{GAMMA}, {GAMMA}]


async def test_states_written_without_a_version_are_listed_and_read_again(
    settings: Settings, redis_client: Redis
) -> None:
    key = settings.streams.key(ACCOUNT_NAMESPACE, BETA)
    await redis_client.set(key, encode_state(ACCOUNTS[1]))
    reader = CountingReader(redis_client, settings)
    rows = ListRows(reader, redis_client, settings)

    [beta] = await rows.refresh()
    assert beta.valid_grant == Decimal(0)
    later = state(BETA, "Beta Store", bc="b2", currency="USD", valid=75)
    await redis_client.set(key, encode_state(later))
    reader.read.clear()
    [beta] = await rows.refresh()
    assert reader.read == [{BETA}]
    assert beta.valid_grant == Decimal(75)
    assert beta == row_of(later, (await reader.ledgers([BETA]))[BETA], settings.detect)
    # No version: not stored.
    assert not await redis_client.exists(settings.streams.keyspace.rows_key("state", 0))

    await redis_client.delete(key)
    assert await rows.refresh() == []


def test_a_row_survives_its_encoding() -> None:
    row = row_of(ACCOUNTS[0], AccountLedger(credits=(WELCOME,)), DetectSettings(), "v1")
    assert row.alerts and row.next_expiry_at is not None
    assert decode_row(encode_row(row)) == row
    assert decode_row(b"[99]") is None  # another format is no row
    assert decode_row(b"not json") is None
