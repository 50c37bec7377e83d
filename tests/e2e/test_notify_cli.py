"""The notification commands and settings, through the real ``creditwatch`` command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
from redis.asyncio import Redis

from config.settings import Settings
from service.deliver.clock import FakeClock, utc_now
from tests.support.cli import creditwatch, env_for, refused_config
from tests.support.notify import notify_settings, pipeline, run_rounds, transition
from tests.support.paths import ROOT
from tests.support.receiver import SECRET, Reply, WebhookSink

EXAMPLE = ROOT / "config" / "example.yaml"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/secret-part-123"


def test_the_example_configuration_validates_and_masks_its_secrets(tmp_path: Path) -> None:
    env = {
        "CREDITWATCH_CONFIG_FILE": str(EXAMPLE),
        "SLACK_WEBHOOK_URL": SLACK_URL,
        "SMTP_PASSWORD": "smtp-password-789",
    }
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notify = json.loads(result.stdout)["notify"]
    assert [r["name"] for r in notify["receivers"]] == ["growth-slack", "finance-mail", "ops-hook"]
    assert notify["route"]["routes"][1]["match"] == {"kind": ["credit.*"], "team": ["growth"]}
    assert SLACK_URL not in result.stdout + result.stderr
    assert "smtp-password-789" not in result.stdout + result.stderr


def test_a_route_to_an_unknown_receiver_is_one_clear_line(tmp_path: Path) -> None:
    result = refused_config(
        tmp_path,
        "notify:\n  receivers: [{type: console, name: desk}]\n"
        "  route:\n    receiver: desk\n    routes: [{receiver: dsek}]\n",
    )
    [line] = result.stderr.strip().splitlines()
    assert "route.routes.0.receiver: unknown receiver 'dsek' (known: console, desk)" in line


def test_silences_are_added_listed_and_expired(settings: Settings, tmp_path: Path) -> None:
    env = env_for(settings)
    added = creditwatch(
        "silence", "add", "--match", "kind=credit.*", "--match", "advertiser_id=71",
        "--duration", "2h", "--comment", "top-up on its way", "--author", "ana",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[0]
    assert silence_id.startswith("sil_")
    listed = creditwatch("silence", "list", env=env, cwd=tmp_path)
    header, row = listed.stdout.strip().splitlines()
    assert header.split()[:4] == ["ID", "STATE", "STARTS", "ENDS"]
    assert silence_id in row and "active" in row and "kind=credit.* advertiser_id=71" in row
    expired = creditwatch("silence", "expire", silence_id, env=env, cwd=tmp_path)
    assert expired.returncode == 0
    assert silence_id not in creditwatch("silence", "list", env=env, cwd=tmp_path).stdout
    assert "expired" in creditwatch("silence", "list", "--all", env=env, cwd=tmp_path).stdout
    bad = creditwatch(
        "silence", "add", "--match", "tema=growth", "--comment", "x", "--author", "y",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "unknown label 'tema'" in bad.stderr


def test_silence_add_is_capped_as_the_api_is(settings: Settings, tmp_path: Path) -> None:
    env = {**env_for(settings), "CREDITWATCH_NOTIFY__SILENCES__MAX_ACTIVE": "1"}
    add = ("silence", "add", "--match", "advertiser_id=71", "--comment", "x", "--author", "y")
    first = creditwatch(*add, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = creditwatch(*add, env=env, cwd=tmp_path)
    assert second.returncode == 2
    assert "at most 1 pending or active silences (notify.silences.max_active)" in second.stderr
    [row] = creditwatch("silence", "list", env=env, cwd=tmp_path).stdout.strip().splitlines()[1:]
    assert row.startswith(first.stdout.split()[0])


async def test_failed_deliveries_are_listed_with_their_attempts_and_replayed(
    settings: Settings, redis_client: Redis, tmp_path: Path
) -> None:
    # The replay command runs in another process on the machine's clock, so this test's clock
    # starts at real now: both agree on when the replay is due, on any day.
    clock = FakeClock(utc_now())
    async with (
        WebhookSink([Reply(500), Reply(400), Reply(404)]) as sink,
        httpx.AsyncClient() as http,
    ):
        configured = notify_settings(
            settings,
            receivers=[{"type": "webhook", "name": "ops", "url": sink.url, "secret": SECRET}],
            route={"receiver": "ops", "group_wait": 0, "group_interval": 0},
        )
        notify = pipeline(configured, redis_client, http, clock)
        await notify.notifier.handle(transition(starts_at=clock.now).to_json(), "1-0")
        await run_rounds(notify, clock, 3, timedelta(minutes=5))

        env = env_for(settings)
        listed = creditwatch("deliveries", "list", "--failed", env=env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["CREATED", "STATUS", "RECEIVER", "TRIES", "ALERTS", "ID"]
        assert "failed" in lines[1] and "credit.exhausted firing 71" in lines[1]
        attempts = [line for line in lines if line.startswith("  20")]
        assert [a.split()[1:3] for a in attempts] == [
            ["retry", "500"],
            ["retry", "400"],
            ["retry", "404"],
        ]
        as_json = json.loads(
            creditwatch("deliveries", "list", "--json", env=env, cwd=tmp_path).stdout
        )
        assert as_json[0]["status"] == "failed"

        replayed = creditwatch("deliveries", "replay", "--all-failed", env=env, cwd=tmp_path)
        assert replayed.returncode == 0, replayed.stderr
        assert "queued again: ops:" in replayed.stdout
        clock.advance(timedelta(minutes=1))  # the replay is due at its real time: now
        clock.now = max(
            clock.now, (await notify.deliveries.history(limit=1))[0].next_attempt_at or clock.now
        )
        await notify.run_once()
    assert len(sink.received) == 4
    [done] = await notify.deliveries.history(limit=1)
    assert done.status == "delivered"
    assert done.attempts[-1].status_code == 200
    missing = creditwatch("deliveries", "replay", "nope", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such delivery: nope" in missing.stderr
