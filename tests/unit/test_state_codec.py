"""Stored detector state: the MessagePack encoding, and states written as pydantic JSON before it.

The fixtures under ``tests/support/fixtures/state/`` were written by the pydantic ``AccountState`` /
``CenterState`` models this encoding replaced; an upgrade must read them and keep every field
(in Redis: tests/integration/test_state_store.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec
import pytest

from service.detect.state import (
    AccountState,
    CenterState,
    SpendDays,
    StateCodec,
    encode_state,
)
from tests.support import paths

FIXTURES = paths.FIXTURES / "state"
LEGACY_ACCOUNT = (FIXTURES / "pydantic_v1_account.json").read_bytes().strip()
LEGACY_CENTER = (FIXTURES / "pydantic_v1_center.json").read_bytes().strip()


def test_a_pydantic_json_account_state_decodes_with_every_field() -> None:
    state = StateCodec(AccountState).decode(LEGACY_ACCOUNT)
    at = datetime(2026, 11, 3, 12, 30, tzinfo=UTC)
    assert state.advertiser_id == "7300000000000000001"
    assert state.profile is not None and state.profile.currency == "USD"
    assert state.now == at and state.last_observed_at == at
    assert state.valid_grant == Decimal("812.40") and state.frozen_grant == Decimal("37.60")
    assert state.balance_reminder is True
    assert [p.grant for p in state.history] == [Decimal("860.00"), Decimal("850.00")]
    assert state.grant_at_midnight == {date(2026, 11, 2): Decimal("900.00")}
    assert state.spend["bc_cost"][date(2026, 11, 2)].grant == Decimal("40.00")
    assert state.spend["report"][date(2026, 11, 2)].observed_at == datetime(
        2026, 11, 3, 9, 30, tzinfo=UTC
    )
    assert state.transactions["tx1"].credit_id == "welcome"
    assert state.open["credit.frozen"].alert_id == "al_1"
    assert state.notified == ["credit.issued|tx1"]
    assert state.credit_unused == {"welcome": Decimal("450.00")}
    # What the legacy text says is what the new encoding keeps.
    assert StateCodec(AccountState).decode(encode_state(state)) == state


def test_a_pydantic_json_center_state_decodes() -> None:
    state = StateCodec(CenterState).decode(LEGACY_CENTER)
    assert state.bc_id == "7001"
    assert state.auth_failed == ["cost"]
    assert state.valid_grant == Decimal("4.00")
    assert StateCodec(CenterState).decode(encode_state(state)) == state


def test_the_encoding_is_messagepack_and_smaller_than_the_json_it_replaces() -> None:
    state = StateCodec(AccountState).decode(LEGACY_ACCOUNT)
    encoded = encode_state(state)
    assert not encoded.startswith(b"{")
    assert len(encoded) < 0.6 * len(LEGACY_ACCOUNT)
    # Days are stored as day numbers, not ISO text.
    assert b"2026-11-02" not in encoded


def test_day_figures_given_as_a_plain_dict_decode_alike() -> None:
    state = StateCodec(AccountState).decode(LEGACY_ACCOUNT)
    figures = dict(state.spend["bc_cost"].items())
    plain = msgspec.structs.replace(state, spend={"bc_cost": figures})
    again = StateCodec(AccountState).decode(encode_state(plain))
    assert again.spend == {"bc_cost": state.spend["bc_cost"]}
    assert isinstance(again.spend["bc_cost"], SpendDays)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{not json", b'{"advertiser_id": 5}', b'{"now": "2026-11-03T12:30:00"}', b"\xc1"],
)
def test_anything_else_is_refused_as_a_decode_error(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        StateCodec(AccountState).decode(raw)
