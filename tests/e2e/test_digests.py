"""Digests: what they say, the ``digest`` command, delivery by email and Slack, the schedule.

The accounts are the demo scenario's after 18 hours, evaluated by the detectors' own rules
(tests/pipeline.py) and stored in Redis as the service stores them, with the scenario's
ledger; the digest must show what the accounts read model (``/v1/accounts``) computes. The
preview and ``send`` go through the real command line (a subprocess); sending goes through
the normal durable delivery to a real SMTP server and a Slack stand-in. The schedule runs on
a fake clock: a digest due while the service was down goes out once when it is back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from redis.asyncio import Redis

from config.notify import DigestSchedule
from config.settings import Settings
from service.deliver.clock import FakeClock, utc_now
from service.deliver.digests import latest_due, period_of
from service.detect.accounts import AccountsReader, AccountView
from service.detect.ledger_store import ConfigLedger, RedisLedger
from service.detect.state import encode_state
from tests.support.cli import creditwatch, env_for
from tests.support.notify import notify_settings, pipeline, run_rounds
from tests.support.pipeline import Pipeline
from tests.support.receiver import SlackSink
from tests.support.smtp_server import SmtpSink
from workers.sandbox import DEMO_SCENARIO, load_scenario

# Every advertiser of the demo scenario has a state after 18 hours.
DEMO_ADVERTISERS = sum(1 for _ in load_scenario(DEMO_SCENARIO).advertisers())


@pytest.fixture
async def accounts(settings: Settings, redis_client: Redis) -> list[AccountView]:
    """The demo's accounts after 18 hours, in Redis; the read model's views of them."""
    scenario = load_scenario(DEMO_SCENARIO)
    demo = Pipeline(scenario)
    try:
        await demo.run(18, every_h=6)
    finally:
        await demo.aclose()
    ledger = RedisLedger(redis_client, settings.streams, ConfigLedger([], []))
    for credit in scenario.ledger.credits:
        await ledger.put_credit(credit)
    for program in scenario.ledger.ladder_programs:
        await ledger.put_program(program)
    for state in demo.accounts.values():
        key = settings.streams.key("state", state.advertiser_id)
        await redis_client.set(key, encode_state(state))
    return await AccountsReader(redis_client, settings).all()


def email(port: int, **extra: Any) -> dict[str, Any]:
    return {"type": "email", "name": "finance-mail", "host": "127.0.0.1", "port": port,
            "security": "none", "sender": "creditwatch@example.com",
            "to": ["finance@example.com"], **extra}  # fmt: skip


def slack(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "slack", "name": "finance-slack", "url": url, **extra}


def configured(tmp_path: Path, settings: Settings, *receivers: dict[str, Any]) -> dict[str, str]:
    """The environment of a ``creditwatch`` run with these receivers (and this test's Redis)."""
    config = tmp_path / "creditwatch.yaml"
    notify = {"console": False, "receivers": list(receivers),
              "external_url": "https://credits.example.com"}  # fmt: skip
    config.write_text(yaml.safe_dump({"notify": notify}))
    return env_for(settings, CREDITWATCH_CONFIG_FILE=str(config))


def money(view: AccountView, amount: str) -> str:
    return f"{amount} {view.currency}"


async def test_the_preview_shows_what_the_accounts_api_computes(
    settings: Settings, accounts: list[AccountView], tmp_path: Path
) -> None:
    env = configured(tmp_path, settings, email(2525), slack("https://hooks.slack.com/x"))
    result = creditwatch("digest", "preview", "--receiver", "finance-mail", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("creditwatch daily digest, ")
    assert len(accounts) == DEMO_ADVERTISERS
    for view in accounts:
        block = text.split(f"{view.advertiser_name} ({view.advertiser_id}", 1)[1].split("\n\n")[0]
        assert f"credit left: {money(view, view.balances.valid_grant)}" in block
        if view.burn_rate_per_day is not None:
            assert f"burn: {money(view, view.burn_rate_per_day)}/day" in block
        for alert in view.active_alerts:
            assert f"firing: {alert.kind} since" in block
        for ladder in view.ladders:
            assert f"tier {ladder.tiers_reached}/{ladder.tiers}" in block
        assert f"https://credits.example.com/accounts/{view.advertiser_id}" in block
    expiring = next(v for v in accounts if v.advertiser_name == "Expiring Goods")
    [credit] = [c for c in expiring.credits if c.name == "Welcome offer"]
    assert (
        f"expiring: Welcome offer, {credit.unused} USD unused on {credit.valid_to:%Y-%m-%d}, "
        f"{credit.projected_forfeit} USD projected to be forfeited"
    ) in text
    usd = [v for v in accounts if v.currency == "USD"]
    usd_left = sum(float(v.balances.valid_grant) for v in usd)
    assert f"USD: {len(usd)} accounts, {usd_left:.2f} credit left" in text
    assert "runway: out of credit, paying with cash" in text  # Discount Deals

    html = creditwatch("digest", "preview", "--format", "html", env=env, cwd=tmp_path)
    assert html.returncode == 0, html.stderr
    assert html.stdout.startswith("<!doctype html>")
    assert "<th>Projected forfeit</th>" in html.stdout
    blocks = creditwatch("digest", "preview", "--receiver", "finance-slack", "--format", "slack",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert blocks.returncode == 0, blocks.stderr
    assert '"type": "header"' in blocks.stdout


async def test_digest_commands_name_a_wrong_receiver(settings: Settings, tmp_path: Path) -> None:
    env = configured(tmp_path, settings, email(2525), {"type": "console", "name": "desk"})
    unknown = creditwatch("digest", "send", "--receiver", "finanse", env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no such receiver: finanse (known: finance-mail, desk)" in unknown.stderr
    console = creditwatch("digest", "preview", "--receiver", "desk", env=env, cwd=tmp_path)
    assert console.returncode == 2
    assert "receiver desk is console: digests go to email or slack" in console.stderr


async def test_digest_send_goes_through_the_service_by_email_and_slack(
    settings: Settings,
    redis_client: Redis,
    outbound: httpx.AsyncClient,
    accounts: list[AccountView],
    tmp_path: Path,
) -> None:
    with SmtpSink() as smtp:
        async with SlackSink() as sink:
            receivers = (email(smtp.port), slack(sink.url))
            env = configured(tmp_path, settings, *receivers)
            for name in ("finance-mail", "finance-slack"):
                sent = creditwatch("digest", "send", "--receiver", name, env=env, cwd=tmp_path)
                assert sent.returncode == 0, sent.stderr
                assert sent.stdout.startswith(f"queued: {name}:digest:now-")
            clock = FakeClock(utc_now())  # the command line stamped its deliveries with real time
            service = pipeline(
                notify_settings(settings, receivers=list(receivers)), redis_client, outbound, clock
            )
            await service.run_once()
    [message] = smtp.messages
    assert message["Subject"].startswith("creditwatch daily digest, ")
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    for view in accounts:
        assert f"{view.advertiser_name} ({view.advertiser_id}" in text.get_content()
        assert view.advertiser_name in html.get_content()
    [posted] = sink.messages
    assert posted["text"] == message["Subject"]
    blocks = posted["blocks"]
    assert blocks[0]["type"] == "header"
    assert "USD" in blocks[1]["text"]["text"]
    sections = [b for b in blocks[3:] if b["type"] == "section"]
    assert len(sections) == len(accounts)
    assert len(blocks) <= 50  # Slack's limit per message
    delivered = await service.deliveries.history(limit=5)
    assert {d.status for d in delivered} == {"delivered"}


def test_the_latest_due_time_is_local_and_weekly_picks_its_weekday() -> None:
    daily = DigestSchedule(schedule="daily", at="08:00", time_zone="Europe/Berlin")
    winter = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert latest_due(daily, winter) == winter
    assert period_of(latest_due(daily, winter)) == "2026-12-02"
    assert period_of(latest_due(daily, winter - timedelta(seconds=1))) == "2026-12-01"
    summer = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)  # 08:00 in Berlin (CEST)
    assert latest_due(daily, summer) == summer
    weekly = DigestSchedule.model_validate(
        {"schedule": "weekly", "weekday": "mon", "time_zone": "Europe/Berlin"}
    )
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert period_of(latest_due(weekly, wednesday)) == "2026-11-30"  # that Monday
    with pytest.raises(ValueError, match="unknown time zone"):
        DigestSchedule.model_validate({"time_zone": "Europe/Berln"})


async def test_a_digest_due_while_the_service_was_down_goes_out_once(
    settings: Settings,
    redis_client: Redis,
    outbound: httpx.AsyncClient,
    accounts: list[AccountView],
) -> None:
    # 06:00 in Berlin on a Sunday: the first sight of the digest sends nothing.
    clock = FakeClock(datetime(2026, 11, 22, 5, 0, tzinfo=UTC))
    schedule = {"schedule": "daily", "at": "08:00", "time_zone": "Europe/Berlin"}
    with SmtpSink() as smtp:
        configured_settings = notify_settings(
            settings, receivers=[email(smtp.port, digest=schedule)]
        )
        service = pipeline(configured_settings, redis_client, outbound, clock)
        await service.run_once()
        assert smtp.messages == []
        clock.advance(2 * 3600)  # 08:00 Berlin
        await service.run_once()
        await service.run_once()
        assert [m["Subject"] for m in smtp.messages] == ["creditwatch daily digest, 2026-11-22"]
        # Down for three days and a half; back at 20:00 on Wednesday.
        clock.advance(3.5 * 86400)
        restarted = pipeline(configured_settings, redis_client, outbound, clock)
        await run_rounds(restarted, clock, 3, 60)
        assert [m["Subject"] for m in smtp.messages][1:] == ["creditwatch daily digest, 2026-11-25"]
        clock.advance(12 * 3600 - 180)  # 08:00 on Thursday
        await restarted.run_once()
    assert [m["Subject"] for m in smtp.messages][2:] == ["creditwatch daily digest, 2026-11-26"]
    assert len(accounts) == DEMO_ADVERTISERS
    ids = {d.id for d in await restarted.deliveries.history(limit=10)}
    assert ids == {f"finance-mail:digest:2026-11-{day}" for day in (22, 25, 26)}
