"""Fallback receivers: after a receiver's last attempt fails, its fallback gets the alerts.

Real webhook and Slack stand-ins over HTTP, a real Redis, the real pipeline on a fake clock
with a short retry schedule (5 s, 60 s: three attempts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.notify import NotifySettings
from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from tests.support.cli import refused_config
from tests.support.notify import NotifyWith, notify_settings, transition
from tests.support.receiver import SECRET, Reply, SlackSink, WebhookSink

AT_ONCE = {"group_wait": 0, "group_interval": 0}


def hook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": url, "secret": SECRET, **extra}


def falling_back(
    settings: Settings, primary: dict[str, Any], backup: WebhookSink, **route: Any
) -> Settings:
    """Every alert to ``primary`` at once; what it cannot deliver goes to ``backup``."""
    return notify_settings(
        settings,
        receivers=[{**primary, "fallback": "backup"}, hook("backup", backup.url)],
        route={"receiver": primary["name"], **AT_ONCE, **route},
    )


async def exhaust_retries(notify: NotifyPipeline, clock: FakeClock) -> None:
    """Three attempts (now, +5 s, +60 s), then one more round for what they queued."""
    for wait in (0, 5, 60, 0):
        clock.advance(wait)
        await notify.run_once()


async def test_what_the_first_receiver_could_not_deliver_goes_to_its_fallback_once(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with WebhookSink([Reply(500)] * 20) as broken, WebhookSink() as backup:
        notify = notify_with(falling_back(settings, hook("primary", broken.url), backup))
        firing = transition()
        await notify.notifier.handle(firing.to_json(), "1-0")
        await exhaust_retries(notify, clock)
        assert len(broken.received) == 3
        assert [p["data"]["alert_id"] for p in backup.payloads()] == [firing.alert_id]
        original = await notify.deliveries.get(f"primary:{firing.transition_id}")
        assert original is not None and original.status == "failed"
        copy = await notify.deliveries.get(f"backup:primary:{firing.transition_id}")
        assert copy is not None and copy.status == "delivered"
        assert "fallback for primary:" in copy.note and "500" in copy.note

        # Replayed and failed again: the fallback already has it and is not told twice.
        await notify.deliveries.replay(original.id, clock.now)
        await exhaust_retries(notify, clock)
        assert len(broken.received) == 6
        assert len(backup.received) == 1


async def test_a_grouped_message_falls_back_to_a_webhook_one_transition_each(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with SlackSink([Reply(500)] * 20) as slack, WebhookSink() as backup:
        chat = {"type": "slack", "name": "chat", "url": slack.url}
        notify = notify_with(falling_back(settings, chat, backup, group_by=["kind"]))
        await notify.notifier.handle(transition(advertiser_id="71").to_json(), "1-0")
        await notify.notifier.handle(transition(advertiser_id="72").to_json(), "2-0")
        await exhaust_retries(notify, clock)
        assert len(slack.messages) == 3
        assert sorted(p["data"]["advertiser_id"] for p in backup.payloads()) == ["71", "72"]
        assert all(r.verified for r in backup.received)


@pytest.mark.parametrize(
    ("receivers", "message"),
    [
        ([hook("a", "https://a.example", fallback="nope")], "receivers.0.fallback: unknown"),
        (
            [
                hook("a", "https://a.example", fallback="b"),
                hook("b", "https://b.example", fallback="a"),
            ],
            "receivers.0.fallback: fallbacks go round: a -> b -> a",
        ),
        ([hook("a", "https://a.example", fallback="a")], "fallbacks go round: a -> a"),
    ],
)
def test_bad_fallbacks_are_named(receivers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError) as failure:
        NotifySettings.model_validate({"receivers": receivers})
    assert message in str(failure.value)


def test_a_fallback_cycle_in_the_file_exits_2_naming_its_path(tmp_path: Path) -> None:
    result = refused_config(
        tmp_path,
        "notify:\n  receivers:\n"
        "    - {type: console, name: a, fallback: b}\n"
        "    - {type: console, name: b, fallback: a}\n",
    )
    assert "(notify)" in result.stderr and "receivers.0.fallback" in result.stderr
    assert "a -> b -> a" in result.stderr
