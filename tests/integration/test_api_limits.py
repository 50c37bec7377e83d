"""The HTTP app's limits, through an ASGI client on a real Redis: auth before the body, body
size, non-finite numbers, caps on silences and subscriptions, the silence cache, /metrics
behind the token, and the concurrency cap.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from config.api import ApiSettings
from config.notify import NotifySettings, SilenceDefaults
from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.silences import Silence, Silences
from service.http.admission import ConcurrencyLimit
from tests.support.api import AUTH, TOKEN, api_settings, app_client
from tests.support.api_account import CREDIT
from tests.support.silences import silence_from
from tests.support.waiting import eventually

SILENCE: dict[str, Any] = {
    "matchers": {"kind": "credit.*"},
    "duration": "2h",
    "comment": "top-up",
    "author": "ana",
}


@pytest.fixture
async def http(settings: Settings, redis_client: Redis) -> Any:
    async with app_client(api_settings(settings), redis_client) as client:
        yield client


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/credits", CREDIT, "amount"),
        ("/v1/silences", SILENCE, "comment"),
        ("/v1/subscriptions", {"url": "https://hooks.example.com/cw"}, "description"),
    ],
)
async def test_non_finite_numbers_get_422_naming_the_field(
    http: httpx.AsyncClient, number: str, path: str, body: dict[str, Any], field: str
) -> None:
    # Python's json writes NaN and Infinity as bare words, as a hostile client would.
    raw = json.dumps({**body, field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', number)
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await http.post(path, content=raw, headers=headers)
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["body", field] in locs


async def test_deeply_nested_input_gets_422_too(http: httpx.AsyncClient) -> None:
    nested: Any = "x"
    for _ in range(500):
        nested = [nested]
    response = await http.post("/v1/credits", json={**CREDIT, "amount": nested}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]


async def test_without_a_token_malformed_json_gets_401_not_422(http: httpx.AsyncClient) -> None:
    broken = {"Content-Type": "application/json"}
    refused = await http.post("/v1/credits", content=b'{"id": "x", oops', headers=broken)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    wrong = {**broken, "Authorization": "Bearer not-the-token-at-all"}
    assert (await http.post("/v1/credits", content=b"{oops", headers=wrong)).status_code == 401
    authorized = await http.post("/v1/credits", content=b"{oops", headers={**broken, **AUTH})
    assert authorized.status_code == 422


async def test_a_body_over_api_max_body_bytes_is_413(
    settings: Settings, redis_client: Redis
) -> None:
    limited = api_settings(settings).model_copy(
        update={"api": ApiSettings(tokens=[SecretStr(TOKEN)], max_body_bytes=4096)}
    )
    big = json.dumps({**SILENCE, "comment": "x" * 5000}).encode()
    async with app_client(limited, redis_client) as http:
        headers = {**AUTH, "Content-Type": "application/json"}
        assert (await http.post("/v1/silences", content=big, headers=headers)).status_code == 413

        async def chunks() -> Any:  # no Content-Length: counted as it streams
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        streamed = await http.post("/v1/silences", content=chunks(), headers=headers)
        assert streamed.status_code == 413
        small = await http.post("/v1/silences", json=SILENCE, headers=AUTH)
        assert small.status_code == 201


async def test_metrics_want_the_token_unless_public(
    settings: Settings, redis_client: Redis
) -> None:
    async with app_client(api_settings(settings), redis_client) as http:
        assert (await http.get("/metrics")).status_code == 401
        shown = await http.get("/metrics", headers=AUTH)
        assert shown.status_code == 200
        assert "creditwatch_" in shown.text
    public = api_settings(settings).model_copy(
        update={"api": ApiSettings(tokens=[SecretStr(TOKEN)], metrics_public=True)}
    )
    async with app_client(public, redis_client) as http:
        assert (await http.get("/metrics")).status_code == 200


def capped(settings: Settings, *, silences: int = 500, subscriptions: int = 100) -> Settings:
    return api_settings(settings).model_copy(
        update={
            "notify": NotifySettings(
                console=False,
                allow_private_urls=True,
                silences=SilenceDefaults(max_active=silences),
                max_subscriptions=subscriptions,
            )
        }
    )


async def test_live_silences_are_capped_and_expired_records_bounded(
    settings: Settings, redis_client: Redis
) -> None:
    async with app_client(capped(settings, silences=3), redis_client) as http:
        made = [(await http.post("/v1/silences", json=SILENCE, headers=AUTH)) for _ in range(3)]
        assert [r.status_code for r in made] == [201, 201, 201]
        refused = await http.post("/v1/silences", json=SILENCE, headers=AUTH)
        assert refused.status_code == 409
        assert "notify.silences.max_active" in refused.json()["detail"]
        for _ in range(3):  # expire one, make one: the history of expired ones stays bounded
            oldest = (await http.get("/v1/silences?state=active", headers=AUTH)).json()[0]
            await http.delete(f"/v1/silences/{oldest['id']}", headers=AUTH)
            assert (await http.post("/v1/silences", json=SILENCE, headers=AUTH)).status_code == 201
        everything = (await http.get("/v1/silences", headers=AUTH)).json()
        assert sum(1 for s in everything if s["status"] == "active") == 3
        assert sum(1 for s in everything if s["status"] == "expired") <= 3


async def test_the_silence_list_is_paged(http: httpx.AsyncClient) -> None:
    ids = [
        (await http.post("/v1/silences", json=SILENCE, headers=AUTH)).json()["id"] for _ in range(5)
    ]
    page = await http.get("/v1/silences", params={"limit": 2, "offset": 1}, headers=AUTH)
    assert page.headers["X-Total-Count"] == "5"
    everything = (await http.get("/v1/silences", headers=AUTH)).json()
    assert sorted(s["id"] for s in everything) == sorted(ids)
    assert [s["id"] for s in page.json()] == [s["id"] for s in everything[1:3]]
    too_many = await http.get("/v1/silences", params={"limit": 5000}, headers=AUTH)
    assert too_many.status_code == 422


async def test_subscriptions_are_capped_even_when_created_at_once(
    settings: Settings, redis_client: Redis
) -> None:
    async with app_client(capped(settings, subscriptions=3), redis_client) as http:
        body = {"url": "http://127.0.0.1:9/hook"}
        answers = await asyncio.gather(
            *(http.post("/v1/subscriptions", json=body, headers=AUTH) for _ in range(8))
        )
        assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 5
        refused = next(a for a in answers if a.status_code == 409)
        assert "notify.max_subscriptions" in refused.json()["detail"]
        listed = (await http.get("/v1/subscriptions", headers=AUTH)).json()
        assert len(listed) == 3
        await http.delete(f"/v1/subscriptions/{listed[0]['id']}", headers=AUTH)
        assert (await http.post("/v1/subscriptions", json=body, headers=AUTH)).status_code == 201


async def test_matching_reparses_silences_only_after_a_change(
    settings: Settings, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier, api = (
        Silences(redis_client, settings.streams),
        Silences(redis_client, settings.streams),
    )
    now = utc_now()
    for n in range(20):
        await silence_from(api, {"advertiser_id": f"7{n}"}, now=now)
    parsed = 0
    original = Silence.model_validate_json

    def counting(data: Any, **kwargs: Any) -> Silence:
        nonlocal parsed
        parsed += 1
        return original(data, **kwargs)

    monkeypatch.setattr(Silence, "model_validate_json", counting)
    assert await notifier.matching({"advertiser_id": "75"}, now) is not None
    first = parsed
    for _ in range(50):
        await notifier.matching({"advertiser_id": "75"}, now)
    assert parsed == first == 20
    # A change made elsewhere (another replica, the API) is seen on the next match.
    added = await silence_from(api, {"advertiser_id": "999"}, now=now)
    hit = await notifier.matching({"advertiser_id": "999"}, now)
    assert hit is not None and hit.id == added.id
    await api.expire(added.id, now)
    assert await notifier.matching({"advertiser_id": "999"}, now + timedelta(seconds=1)) is None


async def test_beyond_max_concurrency_requests_get_503_with_retry_after() -> None:
    release = asyncio.Event()
    entered = 0

    async def slow(request: Request) -> PlainTextResponse:
        nonlocal entered
        entered += 1
        await release.wait()
        return PlainTextResponse("done")

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/slow", slow), Route("/healthz", healthz)])
    app = ConcurrencyLimit(inner, limit=2, exempt=frozenset({"/healthz"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cw") as http:
        held = [asyncio.create_task(http.get("/slow")) for _ in range(2)]

        async def both_in() -> bool:
            return entered == 2

        await eventually(both_in)
        refused = await http.get("/slow")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert (await http.get("/healthz")).status_code == 200
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert (await http.get("/slow")).status_code == 200
