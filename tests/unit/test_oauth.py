"""The OAuth client and ``/bc/get/`` listing, against the sandbox's authorization rules.

In-process (the sandbox's ASGI app through httpx's ASGI transport) for the rules, and a
MockTransport for the replies the sandbox never gives (numeric ids, an echoed secret).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config.settings import TikTokSettings
from workers.api_budget import ApiBudget, RateLimits
from workers.business_centers import account_count, business_centers
from workers.oauth import OAuthClient, authorization_url
from workers.sandbox import Sandbox, ScenarioError, parse_scenario
from workers.tiktok import ApiError, AuthError, PermissionDenied, TikTokClient

APP_ID, SECRET = "7300000000042", "oauth-secret-6b1f02"
FULL, ANALYST, STANDARD = "token-full-1a2b", "token-analyst-3c4d", "token-standard-5e6f"
BC_A, BC_B = "7000000000001", "7000000000002"
BASE = "http://sandbox.test/open_api/v1.3"

SCENARIO = f"""
start: 2026-11-01T00:00:00Z
speed: 0
access_token: default-token-9z
app: {{app_id: "{APP_ID}", secret: {SECRET}}}
tokens:
  - token: {FULL}
    business_centers:
      - {{bc_id: "{BC_A}", user_role: ADMIN, finance_role: MANAGER}}
      - {{bc_id: "{BC_B}", user_role: ADMIN, finance_role: MANAGER}}
  - token: {ANALYST}
    business_centers:
      - {{bc_id: "{BC_A}", user_role: STANDARD, finance_role: ANALYST}}
  - token: {STANDARD}
    business_centers:
      - {{bc_id: "{BC_B}", user_role: STANDARD, finance_role: null}}
business_centers:
  - bc_id: "{BC_A}"
    name: Agency A
    advertisers:
      - {{advertiser_id: "7100000000001", name: One, cash_balance: "10"}}
      - {{advertiser_id: "7100000000002", name: Two, cash_balance: "10"}}
  - bc_id: "{BC_B}"
    name: Agency B
    advertisers:
      - {{advertiser_id: "7100000000003", name: Three, cash_balance: "10"}}
"""


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(parse_scenario(SCENARIO), speed=0)


def settings(token: str = "", **more: Any) -> TikTokSettings:
    fields: dict[str, Any] = {
        "base_url": BASE,
        "access_token": SecretStr(token),
        "app_id": APP_ID,
        "app_secret": SecretStr(SECRET),
        "max_retries": 0,
    }
    return TikTokSettings(**{**fields, **more})


def client(sandbox: Sandbox, token: str) -> TikTokClient:
    return TikTokClient(
        settings(token),
        budget=ApiBudget(RateLimits(1000)),
        transport=httpx.ASGITransport(app=sandbox.app),
    )


def oauth(sandbox: Sandbox, **more: Any) -> OAuthClient:
    return OAuthClient(settings(**more), transport=httpx.ASGITransport(app=sandbox.app))


async def test_bc_get_lists_each_tokens_centers_with_roles_over_pages(sandbox: Sandbox) -> None:
    async with client(sandbox, FULL) as api:
        centers = await business_centers(api)
        first_page = await api.get("/bc/get/", {"page": 1, "page_size": 1})
        assert [await account_count(api, c.bc_id) for c in centers] == [2, 1]
    assert [(c.bc_id, c.user_role, c.finance_role, c.name) for c in centers] == [
        (BC_A, "ADMIN", "MANAGER", "Agency A"),
        (BC_B, "ADMIN", "MANAGER", "Agency B"),
    ]
    assert first_page["page_info"]["total_page"] == 2
    assert len(first_page["list"]) == 1
    async with client(sandbox, STANDARD) as api:
        [center] = await business_centers(api)
    assert (center.bc_id, center.user_role, center.finance_role) == (BC_B, "STANDARD", None)
    assert not center.reads_payments
    assert center.timezone == "UTC"


async def test_payment_endpoints_need_a_finance_role_and_a_reached_center(
    sandbox: Sandbox,
) -> None:
    async with client(sandbox, STANDARD) as api:
        with pytest.raises(PermissionDenied, match="Finance role"):
            await api.bc_balance(BC_B)
        # Not a payment endpoint: the report of an account it reaches is allowed.
        assert await api.report_spend("7100000000003", *_days(sandbox)) is not None
        with pytest.raises(PermissionDenied, match=BC_A):
            await api.bc_balance(BC_A)
    async with client(sandbox, ANALYST) as api:
        assert (await api.bc_balance(BC_A))["currency"] == "USD"
        assert len(await api.advertiser_balances(BC_A)) == 2


def _days(sandbox: Sandbox) -> tuple[Any, Any]:
    today = sandbox.simulation.now.date()
    return today, today


async def test_exchange_gives_a_token_once_and_revoking_it_answers_40105(
    sandbox: Sandbox,
) -> None:
    code = sandbox.grants.issue_code(sandbox.simulation.now)
    async with oauth(sandbox) as flow:
        grant = await flow.exchange(code)
        assert sorted(grant.advertiser_ids) == ["7100000000001", "7100000000002", "7100000000003"]
        assert grant.scope
        assert sorted(await flow.advertisers(grant.access_token)) == sorted(grant.advertiser_ids)
        with pytest.raises(ApiError, match="Auth code has been used"):
            await flow.exchange(code)
        token = grant.access_token.get_secret_value()
        async with client(sandbox, token) as api:
            assert len(await business_centers(api)) == 2
            await flow.revoke(grant.access_token)
            with pytest.raises(AuthError) as raised:
                await business_centers(api)
    assert raised.value.code == 40105
    assert token not in str(raised.value)


async def test_a_wrong_secret_is_refused_and_never_shown(sandbox: Sandbox) -> None:
    code = sandbox.grants.issue_code(sandbox.simulation.now)
    async with oauth(sandbox) as flow:
        flow._secret = "wrong-secret-77"  # as if the setting were wrong
        with pytest.raises(ApiError) as raised:
            await flow.exchange(code)
    assert raised.value.code == 40001
    assert "wrong-secret-77" not in str(raised.value)


async def test_an_echoed_secret_or_code_is_hidden_in_the_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        return httpx.Response(200, json={"code": 40002, "message": f"bad request {body}"})

    flow = OAuthClient(settings(), transport=httpx.MockTransport(echo))
    async with flow:
        with pytest.raises(ApiError) as raised:
            await flow.exchange("the-auth-code-123")
    text = str(raised.value)
    assert SECRET not in text
    assert "the-auth-code-123" not in text
    assert "***" in text


async def test_v12_numeric_ids_and_missing_roles_are_read() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        row = {"bc_info": {"bc_id": 7000000000009, "name": "Old", "status": "REVIEWING"}}
        page_info = {"page": 1, "page_size": 50, "total_number": 1, "total_page": 1}
        return httpx.Response(
            200, json={"code": 0, "message": "OK", "data": {"list": [row], "page_info": page_info}}
        )

    api = TikTokClient(
        settings(FULL), budget=ApiBudget(RateLimits(1000)), transport=httpx.MockTransport(reply)
    )
    async with api:
        [center] = await business_centers(api)
    assert center.bc_id == "7000000000009"
    assert (center.user_role, center.finance_role, center.enabled) == (None, None, False)


def test_the_authorization_url_follows_the_base_url() -> None:
    url = authorization_url(
        settings(base_url="https://business-api.tiktok.com/open_api/v1.3"),
        redirect_uri="https://x.example/cb?a=1&b=2",
        state="st 1",
    )
    assert url == (
        "https://business-api.tiktok.com/portal/auth?app_id=7300000000042&state=st+1"
        "&redirect_uri=https%3A%2F%2Fx.example%2Fcb%3Fa%3D1%26b%3D2"
    )


def test_a_scenario_token_must_reach_known_centers_once() -> None:
    unknown = SCENARIO.replace(
        f'{{bc_id: "{BC_B}", user_role: STANDARD', '{bc_id: "7009", user_role: STANDARD'
    )
    with pytest.raises(ScenarioError, match="unknown business center 7009"):
        parse_scenario(unknown)
    twice = SCENARIO.replace(f"token: {ANALYST}", f"token: {FULL}")
    with pytest.raises(ScenarioError, match="token"):
        parse_scenario(twice)
