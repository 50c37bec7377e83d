"""``POST /v1/subscriptions/{id}/test``: rate-limited per subscription, and coarse in what it
says, so that it cannot be used to probe other people's hosts and ports.

Real Redis, the real app through an ASGI client, a real local receiver.
"""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from config.settings import Settings
from service.http.subscription_routes import TEST_EVERY_S
from tests.support.api import AUTH, api_settings, app_client
from tests.support.receiver import Reply, WebhookSink
from tests.support.servers import free_port


async def subscribe(http: httpx.AsyncClient, url: str) -> str:
    created = await http.post("/v1/subscriptions", json={"url": url}, headers=AUTH)
    assert created.status_code == 201
    return str(created.json()["id"])


async def probe(http: httpx.AsyncClient, subscription_id: str) -> httpx.Response:
    return await http.post(f"/v1/subscriptions/{subscription_id}/test", headers=AUTH)


async def test_one_test_event_per_interval_then_429_with_retry_after(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(settings, allow_private=True)
    async with app_client(wired, redis_client) as http, WebhookSink() as sink:
        first, second = await subscribe(http, sink.url), await subscribe(http, sink.url)
        sent = await probe(http, first)
        assert sent.status_code == 200
        assert {k: v for k, v in sent.json().items() if k != "webhook_id"} == {
            "result": "delivered",
            "reason": "accepted",
        }
        again = await probe(http, first)
        assert again.status_code == 429
        assert 1 <= int(again.headers["retry-after"]) <= TEST_EVERY_S
        # The limit is per subscription: another one may be tested at once.
        assert (await probe(http, second)).status_code == 200
    assert len(sink.received) == 2


async def test_the_answer_is_coarse_not_the_endpoints_status_or_body(
    settings: Settings, redis_client: Redis
) -> None:
    wired = api_settings(settings, allow_private=True)
    replies = [Reply(500, {"x-secret-banner": "nginx/1.2.3"}), Reply(401)]
    async with app_client(wired, redis_client) as http, WebhookSink(replies) as sink:
        rejected = await probe(http, await subscribe(http, sink.url))
        closed_port = f"http://127.0.0.1:{free_port()}/hook"
        unreachable = await probe(http, await subscribe(http, closed_port))
    answer = rejected.json()
    # Exactly three keys, and the only free-form one is our own id: the endpoint's status
    # code, headers and body have nowhere to appear. (A substring test on the whole text
    # fails by chance when the random id happens to contain "500".)
    assert set(answer) == {"result", "reason", "webhook_id"}
    assert (answer["result"], answer["reason"]) == ("not_delivered", "rejected")
    assert "500" not in (answer["result"], answer["reason"])
    assert "nginx" not in rejected.text
    assert rejected.headers.get("x-secret-banner") is None
    assert (unreachable.json()["result"], unreachable.json()["reason"]) == (
        "not_delivered",
        "unreachable",
    )
    assert set(unreachable.json()) == {"result", "reason", "webhook_id"}


async def test_a_stored_url_no_longer_allowed_is_refused_without_a_connection(
    settings: Settings, redis_client: Redis
) -> None:
    async with WebhookSink() as sink:
        async with app_client(api_settings(settings, allow_private=True), redis_client) as lab:
            subscription_id = await subscribe(lab, sink.url)
        async with app_client(api_settings(settings), redis_client) as http:
            answer = await probe(http, subscription_id)
    assert (answer.json()["result"], answer.json()["reason"]) == ("not_delivered", "refused")
    assert sink.received == []
