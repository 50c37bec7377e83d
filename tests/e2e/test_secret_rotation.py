"""Webhook secret rotation: several secrets signed at once, and the subscriptions API's
``rotate-secret`` with its grace period (real Redis, real webhook endpoints, real pipeline)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config.notify import NotifySettings
from config.settings import Settings
from service.deliver.clock import FakeClock, utc_now
from service.deliver.subscriptions import Subscriptions, new_secret
from tests.support.api import AUTH, api_settings, app_client
from tests.support.notify import T0, NotifyWith, notify_settings, transition
from tests.support.receiver import Received, WebhookSink

OLD, NEW = new_secret(), new_secret()


def verifies(secret: str, received: Received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_a_receiver_with_two_secrets_signs_with_both(
    settings: Settings, notify_with: NotifyWith
) -> None:
    async with WebhookSink(secret=OLD) as old_side, WebhookSink(secret=NEW) as new_side:
        receivers = [
            {"type": "webhook", "name": name, "url": sink.url, "secrets": [NEW, OLD]}
            for name, sink in (("old-side", old_side), ("new-side", new_side))
        ]
        both = [{"receiver": "old-side", "continue": True}, {"receiver": "new-side"}]
        configured = notify_settings(
            settings,
            receivers=receivers,
            route={"group_wait": 0, "group_interval": 0, "routes": both},
        )
        notify = notify_with(configured)
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        await notify.run_once()
        assert [r.verified for r in old_side.received] == [True]
        assert [r.verified for r in new_side.received] == [True]
        signatures = old_side.received[0].headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({}, "secret (or secrets, while rotating) is required"),
        ({"secret": OLD, "secrets": [NEW]}, "give secret or secrets, not both"),
        ({"secrets": [OLD, "whsec_short"]}, "secrets.1"),
    ],
)
def test_bad_webhook_secrets_are_named(hook: dict[str, Any], message: str) -> None:
    receiver = {"type": "webhook", "name": "h", "url": "https://h.example/x", **hook}
    with pytest.raises(ValueError) as failure:
        NotifySettings.model_validate({"receivers": [receiver]})
    assert message in str(failure.value)


async def test_a_rotated_subscription_signs_with_both_secrets_until_the_grace_ends(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    configured = notify_settings(settings, allow_private_urls=True)
    store = Subscriptions(redis_client, configured.streams)
    notify = notify_with(configured)
    async with WebhookSink() as sink:  # records every request; verified here, by secret
        subscription, old = await store.create(sink.url, kinds=["*"], description="", now=T0)
        rotated = await store.rotate(subscription.id, grace=timedelta(hours=1), now=clock.now)
        assert rotated is not None and rotated.secret != old
        assert rotated.previous_expires_at == T0 + timedelta(hours=1)

        clock.advance(timedelta(minutes=59))
        await notify.notifier.handle(transition(starts_at=clock.now).to_json(), "1-0")
        await notify.run_once()
        await notify.run_once()
        [during] = sink.received
        assert verifies(old, during) and verifies(rotated.secret, during)

        clock.advance(timedelta(minutes=2))  # the grace is over
        await notify.notifier.handle(transition(starts_at=clock.now).to_json(), "2-0")
        await notify.run_once()
        await notify.run_once()
        after = sink.received[1]
        assert not verifies(old, after) and verifies(rotated.secret, after)
        assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_rotate_secret_through_the_api(settings: Settings, redis_client: Redis) -> None:
    wired = api_settings(settings, allow_private=True)
    async with app_client(wired, redis_client) as api, WebhookSink() as sink:
        created = (await api.post("/v1/subscriptions", json={"url": sink.url}, headers=AUTH)).json()
        old, sub_id = created["secret"], created["id"]
        path = f"/v1/subscriptions/{sub_id}/rotate-secret"

        assert (await api.post(path)).status_code == 401
        for bad in ("31d", -5, 1e308, "soon"):
            refused = await api.post(path, json={"grace": bad}, headers=AUTH)
            assert refused.status_code == 422 and "grace" in refused.text, bad
        unknown = "/v1/subscriptions/sub_0000000000000000/rotate-secret"
        missing = await api.post(unknown, headers=AUTH)
        assert missing.status_code == 404

        before = utc_now()
        answer = await api.post(path, json={"grace": "2h"}, headers=AUTH)
        after = utc_now()
        assert answer.status_code == 200
        body = answer.json()
        new = body["secret"]
        assert new.startswith("whsec_") and new != old
        expires = datetime.fromisoformat(body["previous_expires_at"])
        assert before + timedelta(hours=2) <= expires <= after + timedelta(hours=2)
        shown = (await api.get(f"/v1/subscriptions/{sub_id}", headers=AUTH)).text
        assert old not in shown and new not in shown

        # Within the grace the test event verifies with either secret.
        probe = (await api.post(f"/v1/subscriptions/{sub_id}/test", headers=AUTH)).json()
        assert probe["result"] == "delivered"
        [received] = sink.received
        assert verifies(old, received) and verifies(new, received)

        # No body: the default grace of 24 h.
        default = (await api.post(path, headers=AUTH)).json()
        expires = datetime.fromisoformat(default["previous_expires_at"])
        assert timedelta(hours=23, minutes=59) < expires - utc_now() <= timedelta(hours=24)
