"""PagerDuty (Events API v2) and Opsgenie (Alert API) against real local HTTP servers.

The payloads are checked against the fields and limits of the public documentation:
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
https://docs.opsgenie.com/docs/alert-api. A rejected event (PagerDuty's 400 "invalid
event") is dead-lettered with PagerDuty's reason and never tried again; a 429 waits.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from config.notify import NotifySettings, OpsgenieReceiverSettings, PagerDutyReceiverSettings
from config.settings import Settings
from service.deliver.clock import FakeClock
from tests.support.notify import (
    NotifyWith,
    notify_settings,
    resolved,
    run_rounds,
    transition,
    waits_then_retries,
)
from tests.support.recording_server import Answer, RecordingServer
from tests.support.streams import entries

PD_ACCEPTED = Answer(202, {"status": "success", "message": "Event processed", "dedup_key": "x"})
PD_INVALID = Answer(
    400,
    {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'routing_key' is invalid"],
    },
)
OG_ACCEPTED = Answer(202, {"result": "Request will be processed", "took": 0.1, "requestId": "r"})


def one_receiver(settings: Settings, receiver: dict[str, Any], **notify: Any) -> Settings:
    """Every alert to ``receiver`` at once, one delivery per alert."""
    return notify_settings(
        settings,
        receivers=[receiver],
        route={
            "receiver": receiver["name"],
            "group_wait": 0,
            "group_interval": 0,
            "group_by": ["..."],
        },
        **notify,
    )


def test_the_default_endpoints_are_the_public_ones_and_eu_is_settable() -> None:
    pd = PagerDutyReceiverSettings(name="pd", routing_key="R" * 32)
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    eu = PagerDutyReceiverSettings.model_validate(
        {"name": "pd", "routing_key": "R", "url": "https://events.eu.pagerduty.com/v2/enqueue"}
    )
    assert eu.url.startswith("https://events.eu.pagerduty.com")
    og = OpsgenieReceiverSettings(name="og", api_key="k")
    assert og.url == "https://api.opsgenie.com"
    with pytest.raises(ValueError, match="url"):
        OpsgenieReceiverSettings.model_validate({"name": "og", "api_key": "k", "url": "ftp://x"})
    text = NotifySettings.model_validate(
        {"receivers": [{"type": "pagerduty", "name": "pd", "routing_key": "secret-key"}]}
    ).model_dump_json()
    assert "secret-key" not in text


async def test_pagerduty_triggers_then_resolves_one_incident_by_the_alert_id(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=PD_ACCEPTED) as pd:
        receiver = {
            "type": "pagerduty",
            "name": "pd",
            "routing_key": "R0UT1NGKEY0123456789abcdefABCDEF",
            "url": f"{pd.url}/v2/enqueue",
        }
        configured = one_receiver(settings, receiver, external_url="https://credits.example.com/")
        notify = notify_with(configured)
        firing = transition("credit.low", severity="warning", grant="9")
        firing = firing.model_copy(update={"summary": "long " * 400})
        await notify.notifier.handle(firing.to_json(), "1-0")
        await notify.run_once()
        clock.advance(60)
        await notify.notifier.handle(resolved(firing, clock.now).to_json(), "2-0")
        await notify.run_once()
    trigger, resolve = (r.json for r in pd.requests)
    assert [r.path for r in pd.requests] == ["/v2/enqueue", "/v2/enqueue"]
    assert trigger["routing_key"] == resolve["routing_key"] == receiver["routing_key"]
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == firing.alert_id
    payload = trigger["payload"]
    assert set(payload) >= {"summary", "source", "severity"}  # the required fields
    assert len(payload["summary"]) == 1024
    assert payload["severity"] == "warning"
    assert payload["source"] == "tiktok-advertiser-71"
    assert payload["class"] == "credit.low"
    assert payload["custom_details"]["valid_grant_balance"] == "9.00"
    assert payload["custom_details"]["currency"] == "USD"
    assert trigger["links"][0] == {
        "href": "https://credits.example.com/accounts/71",
        "text": "Draining Shop on creditwatch",
    }
    assert trigger["links"][1]["href"].endswith("aadvid=71")


async def test_pagerduty_invalid_event_is_dead_lettered_with_its_reason_and_not_retried(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=PD_INVALID) as pd:
        receiver = {"type": "pagerduty", "name": "pd", "routing_key": "bad", "url": pd.url}
        notify = notify_with(one_receiver(settings, receiver))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await run_rounds(notify, clock, 5, 3600)
    assert len(pd.requests) == 1
    [delivery] = await notify.deliveries.history(limit=5, failed_only=True)
    assert delivery.status == "failed"
    assert "HTTP 400" in delivery.note
    assert "invalid event" in delivery.note
    [dead] = await entries(redis_client, settings.streams.deadletter)
    assert dead[b"source"] == b"deliveries"
    assert b"'routing_key' is invalid" in dead[b"error"]
    assert b"after 1 attempt(s)" in dead[b"error"]


async def test_pagerduty_429_waits_for_retry_after(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    throttled = Answer(429, {"status": "throttle"}, headers={"Retry-After": "40"})
    async with RecordingServer([throttled], default=PD_ACCEPTED) as pd:
        receiver = {"type": "pagerduty", "name": "pd", "routing_key": "k", "url": pd.url}
        notify = notify_with(one_receiver(settings, receiver))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await notify.run_once()
        # The 5 s of the schedule gave way to Retry-After.
        await waits_then_retries(notify, clock, pd.requests, 39)
    assert len(pd.requests) == 2
    [delivery] = await notify.deliveries.history(limit=1)
    assert delivery.status == "delivered"
    assert delivery.attempts[0].status_code == 429


async def test_opsgenie_creates_by_alias_then_closes_by_alias(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=OG_ACCEPTED) as og:
        receiver = {"type": "opsgenie", "name": "og", "api_key": "eb243592-faa2", "url": og.url}
        notify = notify_with(one_receiver(settings, receiver))
        firing = transition().model_copy(update={"summary": "x" * 300})
        await notify.notifier.handle(firing.to_json(), "1-0")
        await notify.run_once()
        clock.advance(60)
        await notify.notifier.handle(resolved(firing, clock.now).to_json(), "2-0")
        await notify.run_once()
    create, close = og.requests
    assert (create.method, create.path) == ("POST", "/v2/alerts")
    assert close.path == f"/v2/alerts/{firing.alert_id}/close"
    assert close.query == {"identifierType": "alias"}
    assert (
        create.headers["authorization"]
        == close.headers["authorization"]
        == ("GenieKey eb243592-faa2")
    )
    body = create.json
    assert body["alias"] == firing.alert_id
    assert len(body["message"]) == 130
    assert body["priority"] == "P1"  # critical
    assert body["details"]["valid_grant_balance"] == "0.00"
    assert all(isinstance(v, str) for v in body["details"].values())  # a string map
    assert close.json["source"] == "creditwatch"


async def test_opsgenie_bad_key_is_final_and_a_5xx_is_retried(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    answers = [Answer(503, {"message": "busy"}), Answer(422, {"message": "Key format invalid"})]
    async with RecordingServer(answers) as og:
        receiver = {"type": "opsgenie", "name": "og", "api_key": "k", "url": og.url}
        notify = notify_with(one_receiver(settings, receiver))
        await notify.notifier.handle(transition().to_json(), "1-0")
        await run_rounds(notify, clock, 4, 600)
    assert len(og.requests) == 2
    [delivery] = await notify.deliveries.history(limit=1, failed_only=True)
    assert [a.status_code for a in delivery.attempts] == [503, 422]
    assert "Key format invalid" in delivery.note


async def test_pagerduty_gets_one_event_per_alert_even_where_the_route_groups(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=PD_ACCEPTED) as pd:
        receiver = {"type": "pagerduty", "name": "pd", "routing_key": "k", "url": pd.url}
        grouping = notify_settings(
            settings,
            receivers=[receiver],
            route={"receiver": "pd", "group_by": ["kind"], "group_wait": "30s"},
        )
        notify = notify_with(grouping)
        batch = [transition(advertiser_id=f"7{n}") for n in range(3)]
        for n, alert in enumerate(batch):
            await notify.notifier.handle(alert.to_json(), f"{n + 1}-0")
        clock.advance(30)
        await notify.run_once()
        await notify.notifier.handle(resolved(batch[0], clock.now).to_json(), "9-0")
        clock.advance(300)
        await notify.run_once()
    events = [r.json for r in pd.requests]
    assert [e["event_action"] for e in events] == ["trigger"] * 3 + ["resolve"]
    assert sorted(e["dedup_key"] for e in events[:3]) == sorted(a.alert_id for a in batch)
    assert events[3]["dedup_key"] == batch[0].alert_id
    # One delivery per alert, named by its transition: firing and resolved are kept in order.
    ids = {d.id for d in await notify.deliveries.history(limit=10)}
    assert ids == {f"pd:{a.alert_id}:firing" for a in batch} | {f"pd:{batch[0].alert_id}:resolved"}
