"""Hostile input, fuzzed: API replies and stream entries never crash the parsers.

Every malformed input ends in the one documented rejection (``ValueError`` from the stream
parsers, ``TikTokError`` from the client), which the callers log, count and dead-letter.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from config.settings import TikTokSettings
from workers.api_budget import ApiBudget, RateLimits
from workers.contract.alerts import parse_transition
from workers.contract.snapshots import AccountBalanceSnapshot, parse_snapshot
from workers.tiktok import TikTokClient, TikTokError

NOW = datetime(2026, 11, 22, tzinfo=UTC)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.just("9" * 5000),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)
amount_fields = st.sampled_from(
    ["grant_balance", "valid_grant_balance", "frozen_grant_balance", "cash_balance", "tax"]
)
rows = st.fixed_dictionaries(
    {},
    optional={
        "advertiser_id": st.one_of(st.text(max_size=80), st.integers(), json_values),
        "advertiser_name": json_values,
        "currency": st.one_of(st.sampled_from(["USD", "EUR", "usd", ""]), json_values),
        "timezone": json_values,
        "balance_info": st.one_of(
            st.dictionaries(amount_fields, json_values, max_size=5), json_values
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(rows)
def test_api_rows_either_validate_or_raise_validation_error(row: dict[str, Any]) -> None:
    try:
        snapshot = AccountBalanceSnapshot.from_api(row, bc_id="7001", observed_at=NOW)
    except ValidationError:
        return
    # What passes is sane: exact, finite, non-negative credit.
    assert snapshot.balances.valid_grant_balance >= 0
    assert snapshot.balances.grant_balance.is_finite()
    assert parse_snapshot(snapshot.to_json()) == snapshot


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_stream_payloads_parse_or_raise_value_error(payload: bytes) -> None:
    for parse in (parse_snapshot, parse_transition):
        try:
            parse(payload)
        except ValueError:
            continue


def test_deep_nesting_is_a_value_error_too() -> None:
    for parse in (parse_snapshot, parse_transition):
        try:
            parse(b"[" * 200_000)
        except ValueError:
            continue
        raise AssertionError(f"{parse.__name__} accepted absurd nesting")


def _client(body: bytes, status: int) -> TikTokClient:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    async def no_sleep(_: float) -> None:
        return None

    return TikTokClient(
        TikTokSettings(
            base_url="http://api.test/open_api/v1.3",
            access_token=SecretStr("fuzz-token-3c9a"),
            max_retries=1,
        ),
        budget=ApiBudget(RateLimits(1000)),
        transport=httpx.MockTransport(reply),
        sleep=no_sleep,
    )


envelopes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"code": st.one_of(st.integers(), json_values)},
        optional={"message": json_values, "request_id": json_values, "data": json_values},
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, st.sampled_from([200, 200, 200, 400, 500, 502]))
def test_any_reply_is_data_or_a_tiktok_error(body: bytes, status: int) -> None:
    async def call() -> None:
        async with _client(body, status) as api:
            try:
                data = await api.get("/bc/balance/get/", {"bc_id": "7001"})
            except TikTokError as error:
                assert "fuzz-token-3c9a" not in str(error)
                return
            assert isinstance(data, dict)

    asyncio.run(call())
