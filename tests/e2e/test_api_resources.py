"""The /v1 resources through an ASGI client on a real Redis: accounts, ledger, silences,
subscriptions (secret once, SSRF refusals, a signed test event, and delivery by the pipeline).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook

from config.ledger import Credit
from config.settings import Settings
from service.detect.state import (
    encode_state,
)
from service.roles import service_role
from tests.support.alert_stream import publish, transition
from tests.support.api import AUTH, api_settings, app_client
from tests.support.api_account import ADV, CREDIT, NOW, PROGRAM, account_state
from tests.support.receiver import WebhookSink
from tests.support.waiting import eventually


async def test_accounts_show_balances_burn_exhaustion_credits_and_ladder(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(
        settings,
        credits=[Credit.model_validate(CREDIT)],
    )
    key = settings.streams.key("state", ADV)
    await redis_client.set(key, encode_state(account_state()))
    async with app_client(wired, redis_client) as http:
        await http.post("/v1/ladder-programs", json=PROGRAM, headers=AUTH)
        listed = (await http.get("/v1/accounts", headers=AUTH)).json()
        assert [a["advertiser_id"] for a in listed] == [ADV]
        account = (await http.get(f"/v1/accounts/{ADV}", headers=AUTH)).json()
        assert (await http.get("/v1/accounts/404", headers=AUTH)).status_code == 404
        assert (await http.get("/", headers=AUTH)).status_code == 200
    assert account["currency"] == "USD"
    assert account["balances"] == {
        "grant": "160.00",
        "valid_grant": "60.00",
        "frozen_grant": "100.00",
        "cash": "500.50",
    }
    burn = Decimal(account["burn_rate_per_day"])
    assert Decimal(19) < burn < Decimal(21)
    runs_out = datetime.fromisoformat(account["projected_exhaustion_at"])
    assert timedelta(days=2.8) < runs_out - NOW < timedelta(days=3.2)  # 60 at ~20/day
    [credit] = account["credits"]
    assert credit["id"] == "welcome-300"
    assert credit["unused"] == "160.00"  # reconciled against the grant balance
    assert account["next_expiry_at"].startswith("2026-11-21T00:00:00")
    [ladder] = account["ladders"]
    assert ladder["qualifying_spend"] == "0.00"  # credit-funded spend does not qualify
    assert ladder["next_tier_threshold"] == "500.00"
    assert [a["kind"] for a in account["active_alerts"]] == ["credit.low"]
    history = account["grant_history"]
    # Rebuilt from daily spend: 8 days back (7 with spend), then the two observations.
    assert history[-1] == {"at": NOW.isoformat().replace("+00:00", "Z"), "grant": "160.00"}
    assert Decimal(history[0]["grant"]) > Decimal(history[-1]["grant"])


async def test_credit_crud_validates_like_the_yaml(http: httpx.AsyncClient) -> None:
    assert (await http.post("/v1/credits", json=CREDIT)).status_code == 401
    created = await http.post("/v1/credits", json=CREDIT, headers=AUTH)
    assert created.status_code == 201
    body = created.json()
    assert body["amount"] == "300.00"
    assert body["source"] == "api"
    assert (await http.post("/v1/credits", json=CREDIT, headers=AUTH)).status_code == 409

    bad = await http.post("/v1/credits", json={**CREDIT, "id": "x", "amount": "-5"}, headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "amount"]
    backwards = {**CREDIT, "id": "y", "valid_to": "2026-10-01T00:00:00Z"}
    assert (await http.post("/v1/credits", json=backwards, headers=AUTH)).status_code == 422
    moved = await http.put("/v1/credits/other", json=CREDIT, headers=AUTH)
    assert moved.status_code == 422
    assert moved.json()["detail"][0]["loc"] == ["body", "id"]

    changed = await http.put(
        "/v1/credits/welcome-300", json={**CREDIT, "amount": "350.5"}, headers=AUTH
    )
    assert changed.json()["amount"] == "350.50"
    listed = (await http.get("/v1/credits", params={"advertiser_id": ADV}, headers=AUTH)).json()
    assert [(c["id"], c["amount"]) for c in listed] == [("welcome-300", "350.50")]
    assert (await http.delete("/v1/credits/welcome-300", headers=AUTH)).status_code == 204
    assert (await http.get("/v1/credits/welcome-300", headers=AUTH)).status_code == 404


async def test_config_entries_are_overridden_not_deleted(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(settings, credits=[Credit.model_validate(CREDIT)])
    async with app_client(wired, redis_client) as http:
        shown = (await http.get("/v1/credits/welcome-300", headers=AUTH)).json()
        assert shown["source"] == "config"
        assert (await http.delete("/v1/credits/welcome-300", headers=AUTH)).status_code == 409
        await http.put("/v1/credits/welcome-300", json={**CREDIT, "amount": "10"}, headers=AUTH)
        assert (await http.get("/v1/credits/welcome-300", headers=AUTH)).json()["source"] == "api"
        assert (await http.delete("/v1/credits/welcome-300", headers=AUTH)).status_code == 204
        back = (await http.get("/v1/credits/welcome-300", headers=AUTH)).json()
        assert (back["source"], back["amount"]) == ("config", "300.00")


async def test_ladder_program_crud(http: httpx.AsyncClient) -> None:
    assert (await http.post("/v1/ladder-programs", json=PROGRAM, headers=AUTH)).status_code == 201
    unsorted = {**PROGRAM, "id": "z", "tiers": list(reversed(PROGRAM["tiers"]))}
    assert (await http.post("/v1/ladder-programs", json=unsorted, headers=AUTH)).status_code == 422
    listed = (await http.get("/v1/ladder-programs", headers=AUTH)).json()
    assert [p["tiers"][1]["reward"] for p in listed] == ["200.00"]
    assert (await http.delete("/v1/ladder-programs/ladder-q4", headers=AUTH)).status_code == 204
    assert (await http.get("/v1/ladder-programs", headers=AUTH)).json() == []


async def test_silence_crud(http: httpx.AsyncClient) -> None:
    request = {
        "matchers": {"kind": "credit.*"},
        "duration": "2h",
        "comment": "top-up",
        "author": "ana",
    }
    created = await http.post("/v1/silences", json=request, headers=AUTH)
    assert created.status_code == 201
    silence = created.json()
    assert silence["status"] == "active"
    assert silence["id"].startswith("sil_")
    unknown = await http.post(
        "/v1/silences", json={**request, "matchers": {"colour": "red"}}, headers=AUTH
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "matchers", "colour"]
    too_long = await http.post("/v1/silences", json={**request, "duration": "365d"}, headers=AUTH)
    assert too_long.status_code == 422
    bad_glob = {**request, "matchers": {"kind": "credit.[low"}}
    assert (await http.post("/v1/silences", json=bad_glob, headers=AUTH)).status_code == 422

    active = (await http.get("/v1/silences?state=active", headers=AUTH)).json()
    assert [s["id"] for s in active] == [silence["id"]]
    expired = await http.delete(f"/v1/silences/{silence['id']}", headers=AUTH)
    assert expired.json()["status"] == "expired"
    assert (await http.get("/v1/silences?state=active", headers=AUTH)).json() == []
    assert (await http.get("/v1/silences/sil_000000", headers=AUTH)).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/cw",  # not https
        "https://127.0.0.1/hook",  # loopback
        "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "https://10.0.0.7/hook",  # private
        "https://[::1]/hook",
        "https://user:pw@8.8.8.8/hook",
        "ftp://example.com/",
    ],
)
async def test_subscriber_urls_are_refused_unless_public_https(
    http: httpx.AsyncClient, url: str
) -> None:
    refused = await http.post("/v1/subscriptions", json={"url": url}, headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "url"]


async def test_a_subscription_shows_its_secret_once_and_gets_a_signed_test_event(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(settings, allow_private=True)
    async with app_client(wired, redis_client) as http, WebhookSink() as sink:
        created = await http.post(
            "/v1/subscriptions", json={"url": sink.url, "kinds": ["credit.*"]}, headers=AUTH
        )
        assert created.status_code == 201
        subscription = created.json()
        secret = subscription.pop("secret")
        assert secret.startswith("whsec_")
        shown = (await http.get(f"/v1/subscriptions/{subscription['id']}", headers=AUTH)).json()
        assert shown == subscription
        listed = (await http.get("/v1/subscriptions", headers=AUTH)).text
        assert secret not in listed
        assert secret.removeprefix("whsec_") not in listed

        result = (
            await http.post(f"/v1/subscriptions/{subscription['id']}/test", headers=AUTH)
        ).json()
        assert (result["result"], result["reason"]) == ("delivered", "accepted")
        [received] = sink.received
        event = Webhook(secret).verify(received.body, received.headers)
        assert event["type"] == "ops.test_event"
        assert received.headers["webhook-id"] == result["webhook_id"]

        updated = await http.put(
            f"/v1/subscriptions/{subscription['id']}",
            json={"url": sink.url, "kinds": ["*"], "description": "ops"},
            headers=AUTH,
        )
        assert updated.json()["kinds"] == ["*"]
        assert "secret" not in updated.json()
        gone = await http.delete(f"/v1/subscriptions/{subscription['id']}", headers=AUTH)
        assert gone.status_code == 204
        missing = await http.post(f"/v1/subscriptions/{subscription['id']}/test", headers=AUTH)
        assert missing.status_code == 404


async def test_the_notifiers_deliver_to_subscriptions_made_through_the_api(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(settings, allow_private=True)
    async with (
        WebhookSink() as sink,
        service_role(wired, settings.redis_url or ""),
        app_client(wired, redis_client) as http,
    ):
        created = await http.post(
            "/v1/subscriptions", json={"url": sink.url, "kinds": ["credit.low"]}, headers=AUTH
        )
        secret = created.json()["secret"]
        await publish(
            wired,
            transition("72", "credit.exhausted", "firing", 1),  # not a kind it wants
            transition("71", "credit.low", "firing", 2),
            transition("71", "credit.low", "resolved", 3),
        )

        async def both() -> bool:
            return len(sink.received) >= 2

        await eventually(both)
    events = [Webhook(secret).verify(r.body, r.headers) for r in sink.received]
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("credit.low", "firing"),
        ("credit.low", "resolved"),
    ]


async def test_a_credit_posted_with_plain_dates_is_valid_all_of_its_last_day(
    http: httpx.AsyncClient,
) -> None:
    dated = {**CREDIT, "id": "dated", "valid_from": "2026-11-01", "valid_to": "2026-11-30"}
    created = await http.post("/v1/credits", json=dated, headers=AUTH)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["valid_from"].startswith("2026-11-01T00:00:00")
    assert body["valid_to"].startswith("2026-12-01T00:00:00")  # the end of the 30th, as in YAML
