"""Slack (Block Kit, one bounded POST) and email (aiosmtplib) against real local servers.

A local HTTP server stands in for Slack's incoming-webhook endpoint and records the JSON; an
``aiosmtpd`` server receives the mail. Grouping: five expiring credits make one message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from config.settings import Settings
from service.deliver.clock import FakeClock
from service.deliver.pipeline import NotifyPipeline
from tests.support.notify import (
    NotifyWith,
    notify_settings,
    resolved,
    transition,
    waits_then_retries,
)
from tests.support.receiver import Reply, SlackSink
from tests.support.smtp_server import SmtpSink


def slack_settings(settings: Settings, url: str, **route: object) -> Settings:
    return notify_settings(
        settings,
        receivers=[{"type": "slack", "name": "team-slack", "url": url}],
        route={"receiver": "team-slack", "group_wait": "30s", "group_interval": "5m", **route},
    )


MailTo = Callable[..., NotifyPipeline]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def mail_to(settings: Settings, smtp: SmtpSink, notify_with: NotifyWith) -> MailTo:
    """The pipeline for one email receiver, ``finance``, on the local SMTP server, sent to
    without waiting; the test gives the rest of the receiver."""

    def build(**receiver: object) -> NotifyPipeline:
        server = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        configured = notify_settings(
            settings,
            receivers=[{"type": "email", "name": "finance", **server, **receiver}],
            route={"receiver": "finance", "group_wait": 0},
        )
        return notify_with(configured)

    return build


async def test_five_alerts_close_together_make_one_block_kit_message(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with SlackSink() as slack:
        notify = notify_with(slack_settings(settings, slack.url))
        for n in range(5):
            alert = transition("credit.low", severity="warning", advertiser_id=f"71{n}", grant="9")
            await notify.notifier.handle(alert.to_json(), f"{n}-0")
            clock.advance(2)
        await notify.run_once()
        assert slack.messages == []  # group_wait: 30 s from the first
        clock.advance(21)
        await notify.run_once()
    [message] = slack.messages
    assert message["text"] == "credit.low (5 alerts)"
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "credit.low (5 alerts)"},
    }
    attachments = message["attachments"]
    assert len(attachments) == 5
    assert {a["color"] for a in attachments} == {"#f2a51a"}  # warning
    first = attachments[0]["blocks"]
    assert first[0]["type"] == "section"
    assert first[0]["text"]["type"] == "mrkdwn"
    assert first[0]["text"]["text"].startswith(":warning: *FIRING* `credit.low` - *Draining Shop*")
    assert {"type": "mrkdwn", "text": "*valid_grant_balance*\n9.00 USD"} in first[1]["fields"]
    context = first[2]["elements"][0]["text"]
    assert "<https://ads.tiktok.com/i18n/account/promotion?aadvid=710|Promotions page>" in context


async def test_slack_429_waits_for_retry_after_and_resolved_is_green(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with SlackSink([Reply(429, {"Retry-After": "30"})]) as slack:
        notify = notify_with(slack_settings(settings, slack.url, group_wait=0, group_interval=0))
        firing = transition()
        await notify.notifier.handle(firing.to_json(), "1-0")
        await notify.run_once()
        await waits_then_retries(notify, clock, slack.messages, 29)
        assert len(slack.messages) == 2
        await notify.notifier.handle(resolved(firing, clock.now).to_json(), "2-0")
        clock.advance(1)
        await notify.run_once()
    assert len(slack.messages) == 3
    assert slack.messages[1]["attachments"][0]["color"] == "#d72638"  # critical
    assert slack.messages[2]["attachments"][0]["color"] == "#2eb67d"  # resolved
    assert slack.messages[2]["text"].startswith("Resolved: credit.exhausted")


async def test_slack_rate_limit_queues_rather_than_drops(
    settings: Settings, clock: FakeClock, notify_with: NotifyWith
) -> None:
    async with SlackSink() as slack:
        notify = notify_with(
            slack_settings(settings, slack.url, group_wait=0, group_interval=0, group_by=["..."])
        )
        for n in range(3):
            alert = transition(advertiser_id=f"72{n}")
            await notify.notifier.handle(alert.to_json(), f"{n}-0")
        await notify.run_once()
        assert len(slack.messages) == 1  # 1 message/s by default for Slack
        for _ in range(2):
            clock.advance(1)
            await notify.run_once()
    assert len(slack.messages) == 3


async def test_email_has_a_text_and_an_html_part_and_a_telling_subject(
    smtp: SmtpSink, mail_to: MailTo
) -> None:
    notify = mail_to(
        sender="creditwatch@example.com", to=["finance@example.com", "ops@example.com"]
    )
    alert = transition("credit.low", severity="warning", name="Shop <&> Co", grant="87.52")
    await notify.notifier.handle(alert.to_json(), "1-0")
    await notify.run_once()
    [message] = smtp.messages
    assert message["Subject"] == ("[FIRING] credit.low Shop <&> Co (71): 87.52 USD credit left")
    assert message["From"] == "creditwatch@example.com"
    assert smtp.envelopes == [
        ("creditwatch@example.com", ["finance@example.com", "ops@example.com"])
    ]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    assert "FIRING warning credit.low - Shop <&> Co (71, business center 70)" in plain
    assert "valid_grant_balance: 87.52 USD" in plain
    assert "https://ads.tiktok.com/i18n/account/promotion?aadvid=71" in plain
    markup = html.get_content()
    assert "Shop &lt;&amp;&gt; Co" in markup  # escaped in HTML
    assert "<td>valid_grant_balance</td>" in markup


async def test_an_smtp_4xx_is_retried_and_templates_can_be_overridden(
    smtp: SmtpSink, clock: FakeClock, mail_to: MailTo
) -> None:
    subject = {"subject": "Credit: {{ alerts[0].advertiser_name }}"}
    notify = mail_to(sender="cw@example.com", to="finance@example.com", templates=subject)
    smtp.refuse_next("451 4.3.0 try again later")
    await notify.notifier.handle(transition().to_json(), "1-0")
    await notify.run_once()
    assert smtp.messages == []
    clock.advance(timedelta(seconds=5))
    await notify.run_once()
    [message] = smtp.messages
    assert message["Subject"] == "Credit: Draining Shop"
    [delivery] = await notify.deliveries.history(limit=1)
    assert [(a.result, a.status_code) for a in delivery.attempts] == [
        ("retry", 451),
        ("delivered", 250),
    ]
