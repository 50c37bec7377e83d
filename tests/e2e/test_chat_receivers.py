"""Teams, Discord, Telegram and Apprise receivers against real local HTTP servers.

Each payload is checked against the service's public documentation: Teams' Workflows
message with an Adaptive Card and its ~28 KB limit; Discord's embed limits (10 embeds,
6,000 characters in all, title 256, description 4,096, field value 1,024); Telegram's
``sendMessage`` (4,096 characters, HTML escaped) and its ``parameters.retry_after``; the
Apprise API's ``/notify/{key}`` body. A refused payload (Teams' 413) is dead-lettered with
the reason and never retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError
from redis.asyncio import Redis

from config.notify import NotifySettings
from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.discord import embed_characters
from service.deliver.pipeline import NotifyPipeline
from tests.support.cli import refused_config
from tests.support.notify import (
    NotifyWith,
    notify_settings,
    resolved,
    transition,
    waits_then_retries,
)
from tests.support.recording_server import Answer, RecordingServer
from tests.support.streams import entries
from workers.contract.alerts import AlertTransition

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
LONG = "The credit runs out soon. " * 400  # 10,400 characters


def grouped(settings: Settings, receiver: dict[str, Any], **notify: Any) -> Settings:
    """Alerts of one kind grouped into one message 30 s after the first."""
    notify.setdefault("external_url", "https://credits.example.com")
    return notify_settings(
        settings,
        receivers=[receiver],
        route={
            "receiver": receiver["name"],
            "group_by": ["kind"],
            "group_wait": "30s",
            "group_interval": "5m",
        },
        **notify,
    )


def alerts(count: int, *, summary: str | None = None, name: str = "Shop") -> list[AlertTransition]:
    out = []
    for n in range(count):
        alert = transition(
            "credit.low", severity="warning", advertiser_id=f"7{n:03}", name=name, grant="9"
        )
        out.append(alert if summary is None else alert.model_copy(update={"summary": summary}))
    return out


async def send(notify: NotifyPipeline, clock: FakeClock, batch: Sequence[AlertTransition]) -> None:
    for n, alert in enumerate(batch):
        await notify.notifier.handle(alert.to_json(), f"{n + 1}-0")
    clock.advance(30)
    await notify.run_once()


async def test_teams_gets_a_workflows_message_with_an_adaptive_card(
    settings: Settings, http: httpx.AsyncClient, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=Answer(202, b"")) as teams:
        receiver = {"type": "teams", "name": "teams", "url": f"{teams.url}/workflows/abc"}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(2))
    [request] = teams.requests
    message = request.json
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, first, second = card["body"]
    assert title["type"] == "TextBlock"
    assert title["text"].startswith("[FIRING:2] credit.low")
    assert first["type"] == "Container"
    assert first["style"] == second["style"] == "warning"
    heading, summary, facts, actions = first["items"]
    assert "7000" in heading["text"]
    assert summary["text"] == "Ad credit of Shop is at 9 USD."
    assert {"title": "valid_grant_balance", "value": "9.00 USD"} in facts["facts"]
    assert actions["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Shop on creditwatch",
        "url": "https://credits.example.com/accounts/7000",
    }


async def test_teams_message_stays_under_28_kb_and_a_413_is_dead_lettered_not_retried(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    too_large = Answer(413, {"error": {"code": "RequestEntityTooLarge"}})
    async with RecordingServer(default=too_large) as teams:
        receiver = {"type": "teams", "name": "teams", "url": teams.url}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(60, summary=LONG))
        for _ in range(4):
            clock.advance(3600)
            await notify.run_once()
    [request] = teams.requests  # never retried
    assert len(request.body) <= 28 * 1024
    body = request.json["attachments"][0]["content"]["body"]
    shown = [b for b in body if b["type"] == "Container"]
    assert 0 < len(shown) < 60
    assert body[-1]["text"] == f"and {60 - len(shown)} more not shown"
    [delivery] = await notify.deliveries.history(limit=1, failed_only=True)
    assert "HTTP 413" in delivery.note
    assert "RequestEntityTooLarge" in delivery.note
    [dead] = await entries(redis_client, settings.streams.deadletter)
    assert b"HTTP 413" in dead[b"error"]


async def test_teams_429_waits_for_its_retry_after_header(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    # Power Automate throttles a flow with 429 and a Retry-After in seconds.
    throttled = Answer(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "20"})
    async with RecordingServer([throttled], default=Answer(202, b"")) as teams:
        receiver = {"type": "teams", "name": "teams", "url": teams.url}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(1))
        await waits_then_retries(notify, clock, teams.requests, 19)
    first, second = teams.requests
    assert first.body == second.body  # the same message, not rebuilt
    [delivery] = await notify.deliveries.history(limit=1)
    assert delivery.status == "delivered"


async def test_discord_embeds_keep_to_discords_limits(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=Answer(204, b"")) as discord:
        receiver = {"type": "discord", "name": "dc", "url": f"{discord.url}/api/webhooks/1/x"}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(12, summary=LONG, name="@everyone " + "N" * 300))
    [request] = discord.requests
    message = request.json
    embeds = message["embeds"]
    assert len(embeds) == 10
    assert sum(embed_characters(e) for e in embeds) <= 6000
    assert len(message["content"]) <= 2000
    assert message["content"].endswith("(and 2 more not shown)")
    assert message["allowed_mentions"] == {"parse": []}
    for embed in embeds:
        assert len(embed["title"]) <= 256
        assert embed["title"].endswith("…")  # the 300-character name was cut
        assert 0 < len(embed["description"]) <= 4096
        assert len(embed["fields"]) <= 25
        assert all(len(f["value"]) <= 1024 and len(f["name"]) <= 256 for f in embed["fields"])
        assert len(embed["footer"]["text"]) <= 2048
        assert embed["color"] == 0xF2A51A


async def test_discord_single_alert_is_whole_and_429_waits_for_retry_after(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    limited = Answer(
        429, {"message": "You are being rate limited.", "retry_after": 12.5, "global": False}
    )
    async with RecordingServer([limited], default=Answer(204, b"")) as discord:
        receiver = {"type": "discord", "name": "dc", "url": discord.url}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(1))
        await waits_then_retries(notify, clock, discord.requests, 12)
    assert len(discord.requests) == 2
    [embed] = discord.requests[1].json["embeds"]
    assert embed["description"].startswith("Ad credit of Shop is at 9 USD.")
    assert (
        "[Shop on creditwatch](https://credits.example.com/accounts/7000)" in (embed["description"])
    )
    [delivery] = await notify.deliveries.history(limit=1)
    assert delivery.status == "delivered"


async def test_telegram_send_message_is_escaped_html_within_4096_characters(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    ok = Answer(200, {"ok": True, "result": {"message_id": 1}})
    async with RecordingServer(default=ok) as telegram:
        receiver = {
            "type": "telegram",
            "name": "tg",
            "bot_token": TOKEN,
            "chat_id": -1001234,
            "api_url": telegram.url,
        }
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(3, summary="<b>" + LONG, name="Shop & <Co>"))
    [request] = telegram.requests
    assert request.path == f"/bot{TOKEN}/sendMessage"
    body = request.json
    assert body["chat_id"] == "-1001234"
    assert body["parse_mode"] == "HTML"
    text = body["text"]
    assert len(text) <= 4096
    assert "Shop &amp; &lt;Co&gt;" in text
    assert "<Co>" not in text
    assert "&lt;b&gt;The credit runs out soon." in text  # the summary's markup is escaped
    assert text.count("<b>FIRING</b>") == 1  # one alert with its summary cut, the rest counted
    assert text.endswith("and 2 more not shown")
    assert '<a href="https://credits.example.com/accounts/7000">' in text


async def test_telegram_429_honours_retry_after_and_a_refusal_never_shows_the_token(
    settings: Settings, redis_client: Redis, clock: FakeClock, notify_with: NotifyWith
) -> None:
    limited = Answer(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 20",
            "parameters": {"retry_after": 20},
        },
    )
    refused = Answer(
        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    )
    async with RecordingServer([limited, refused]) as telegram:
        receiver = {
            "type": "telegram",
            "name": "tg",
            "bot_token": TOKEN,
            "chat_id": "@creditops",
            "api_url": telegram.url,
        }
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(1))
        await waits_then_retries(notify, clock, telegram.requests, 19)
        clock.advance(3600)
        await notify.run_once()
    assert len(telegram.requests) == 2
    [delivery] = await notify.deliveries.history(limit=1, failed_only=True)
    assert "chat not found" in delivery.note
    [dead] = await entries(redis_client, settings.streams.deadletter)
    assert TOKEN.encode() not in dead[b"error"] + dead[b"payload"]
    assert TOKEN not in delivery.model_dump_json()


async def test_apprise_api_gets_title_body_and_type_and_424_is_retried(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    failed_downstream = Answer(424, {"error": "One or more notification could not be sent."})
    async with RecordingServer([failed_downstream]) as apprise:
        receiver = {
            "type": "apprise",
            "name": "lark",
            "url": f"{apprise.url}/notify/finance",
            "tag": "lark",
        }
        notify = notify_with(grouped(settings, receiver))
        [firing] = alerts(1)
        await send(notify, clock, [firing])
        clock.advance(5)
        await notify.run_once()
        await notify.notifier.handle(resolved(firing, clock.now).to_json(), "9-0")
        clock.advance(300)
        await notify.run_once()
    first, retried, resolution = apprise.requests
    assert first.path == "/notify/finance"
    assert first.body == retried.body
    body = first.json
    assert set(body) == {"title", "body", "type", "format", "tag"}
    assert body["type"] == "warning"
    assert body["format"] == "text"
    assert body["tag"] == "lark"
    assert body["title"].startswith("[FIRING] credit.low Shop (7000)")
    assert "Ad credit of Shop is at 9 USD." in body["body"]
    assert resolution.json["type"] == "success"


async def test_apprise_204_no_configuration_is_final(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with RecordingServer(default=Answer(204, b"")) as apprise:
        receiver = {"type": "apprise", "name": "lark", "url": f"{apprise.url}/notify/none"}
        notify = notify_with(grouped(settings, receiver))
        await send(notify, clock, alerts(1))
        clock.advance(3600)
        await notify.run_once()
    assert len(apprise.requests) == 1
    [delivery] = await notify.deliveries.history(limit=1, failed_only=True)
    assert "no configuration" in delivery.note


def test_a_bad_chat_setting_names_its_field() -> None:
    bad = {"type": "telegram", "name": "tg", "bot_token": TOKEN, "chat_id": "my chat"}
    with pytest.raises(ValidationError, match=r"telegram\.chat_id"):
        NotifySettings.model_validate({"receivers": [bad]})
    with pytest.raises(ValidationError, match=r"discord\.url"):
        NotifySettings.model_validate(
            {"receivers": [{"type": "discord", "name": "dc", "url": "discord.com/x"}]}
        )
    shown = NotifySettings.model_validate(
        {"receivers": [{"type": "telegram", "name": "tg", "bot_token": TOKEN, "chat_id": 42}]}
    ).model_dump_json()
    assert TOKEN not in shown
    assert '"chat_id":"42"' in shown


def test_a_malformed_bot_token_is_refused_without_being_echoed(tmp_path: Path) -> None:
    receiver = {"type": "telegram", "name": "tg", "bot_token": "not/a token", "chat_id": 1}
    result = refused_config(tmp_path, yaml.safe_dump({"notify": {"receivers": [receiver]}}))
    assert "bot_token" in result.stderr
    assert "not/a token" not in result.stderr + result.stdout
