"""Settings and the command line: bad settings exit 2 naming the setting; secrets stay masked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings, masked_url
from tests.support.cli import config_file, creditwatch, refused_config

TOKEN = "tt-access-token-0123456789abcdef"
HOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
REDIS_PASSWORD = "redis-password-5e1f0c"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CREDITWATCH_TIKTOK__QPS": "0"}, "CREDITWATCH_TIKTOK__QPS"),
        ({"CREDITWATCH_TIKTOK__QPS": "fast"}, "CREDITWATCH_TIKTOK__QPS"),
        ({"CREDITWATCH_POLL__BALANCE_INTERVAL_S": "-5"}, "CREDITWATCH_POLL__BALANCE_INTERVAL_S"),
        ({"CREDITWATCH_REDIS_URL": "http://x"}, "CREDITWATCH_REDIS_URL"),
        ({"CREDITWATCH_TIKTOK__BC_IDS": "12 34"}, "CREDITWATCH_TIKTOK__BC_IDS"),
        ({"CREDITWATCH_TIKTOK__BASE_URL": "ftp://x"}, "CREDITWATCH_TIKTOK__BASE_URL"),
        ({"CREDITWATCH_TIKTK__QPS": "3"}, "CREDITWATCH_TIKTK__QPS"),
        ({"CREDITWATCH_CONFIG_FILE": "/no/such.yaml"}, "CREDITWATCH_CONFIG_FILE"),
        # Budget settings that contradict each other (issue 18).
        ({"CREDITWATCH_TIKTOK__BUDGET_SHARE": "1.5"}, "CREDITWATCH_TIKTOK__BUDGET_SHARE"),
        ({"CREDITWATCH_TIKTOK__BUDGET_SHARE": "0"}, "CREDITWATCH_TIKTOK__BUDGET_SHARE"),
        ({"CREDITWATCH_TIKTOK__BUDGET_SHARE": "-0.5"}, "CREDITWATCH_TIKTOK__BUDGET_SHARE"),
        (
            {"CREDITWATCH_TIKTOK__QPS": "10", "CREDITWATCH_TIKTOK__QPM": "5"},
            "CREDITWATCH_TIKTOK__QPM",
        ),
        (
            {
                "CREDITWATCH_POLL__BALANCE_INTERVAL_S": "60",
                "CREDITWATCH_POLL__BALANCE_MIN_GAP_S": "60",
            },
            "CREDITWATCH_POLL__BALANCE_MIN_GAP_S",
        ),
        ({"CREDITWATCH_POLL__BALANCE_SWEEPS": "sometimes"}, "CREDITWATCH_POLL__BALANCE_SWEEPS"),
        ({"CREDITWATCH_POLL__RISK_REPOLL_S": "0"}, "CREDITWATCH_POLL__RISK_REPOLL_S"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_webhook_in_the_file_is_named_and_its_secret_not_echoed(tmp_path: Path) -> None:
    result = refused_config(
        tmp_path,
        "notify:\n  receivers:\n    - type: webhook\n      name: ops\n      url: ftp://example\n"
        f"      secret: {HOOK_SECRET}\n",
    )
    assert "notify.receivers.0.webhook.url" in result.stderr
    assert HOOK_SECRET not in result.stderr + result.stdout


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        "notify:\n  receivers:\n    - type: webhook\n      name: ops\n"
        f"      url: https://hooks.example.com/cw\n      secret: {HOOK_SECRET}\n"
        "  route:\n    receiver: ops\n    match: {kind: ['credit.*']}\n"
    )
    env = {
        "CREDITWATCH_CONFIG_FILE": str(config),
        "CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN,
        "CREDITWATCH_TIKTOK__BC_IDS": "7001, 7002",
        "CREDITWATCH_REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    }
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["redis_url"] == "redis://:***@redis.internal:6379/0"
    assert REDIS_PASSWORD not in result.stdout + result.stderr
    assert shown["tiktok"]["bc_ids"] == ["7001", "7002"]
    assert shown["tiktok"]["access_token"] == "**********"
    assert shown["notify"]["receivers"][0]["secret"] == "**********"
    assert shown["notify"]["route"]["match"] == {"kind": ["credit.*"]}
    assert TOKEN not in result.stdout + result.stderr
    assert HOOK_SECRET not in result.stdout + result.stderr


def test_polling_the_real_api_needs_a_token(tmp_path: Path) -> None:
    result = creditwatch("poller", env={"CREDITWATCH_TIKTOK__BC_IDS": "7001"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "CREDITWATCH_TIKTOK__ACCESS_TOKEN" in result.stderr


def test_env_wins_over_the_file_and_lists_accept_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(
        tmp_path, "tiktok:\n  qps: 4\n  bc_ids: ['1', '2']\npoll:\n  balance_interval_s: 60\n"
    )
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    monkeypatch.setenv("CREDITWATCH_TIKTOK__QPS", "2.5")
    monkeypatch.setenv("CREDITWATCH_TIKTOK__BC_IDS", '["9"]')
    settings = load_settings()
    assert settings.tiktok.qps == 2.5
    assert settings.tiktok.bc_ids == ["9"]
    assert settings.poll.balance_interval_s == 60


def test_yaml_syntax_errors_are_settings_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(tmp_path, "tiktok: [unclosed\n")
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="CREDITWATCH_CONFIG_FILE: not valid YAML: line 2"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:p@ss@h:6380/1", "rediss://user:***@h:6380/1"),
        (
            "redis+sentinel://:pw@a:26379,b:26379/main/2",
            "redis+sentinel://:***@a:26379,b:26379/main/2",
        ),
        ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_the_redis_url_is_shown_with_its_password_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


# -- rate-limit tiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named", "says"),
    [
        ({"CREDITWATCH_TIKTOK__QPM": "5"}, "CREDITWATCH_TIKTOK__QPM (tiktok.qpm)", "below"),
        (
            {"CREDITWATCH_TIKTOK__TIER": "premium", "CREDITWATCH_TIKTOK__QPD": "1000"},
            "CREDITWATCH_TIKTOK__QPD (tiktok.qpd)",
            "below tiktok.qpm (1800",
        ),
        ({"CREDITWATCH_TIKTOK__QPD": "0"}, "CREDITWATCH_TIKTOK__QPD", "greater than 0"),
        ({"CREDITWATCH_TIKTOK__QPM": "-60"}, "CREDITWATCH_TIKTOK__QPM", "greater than 0"),
        ({"CREDITWATCH_TIKTOK__TIER": "gold"}, "CREDITWATCH_TIKTOK__TIER", "basic"),
        ({"CREDITWATCH_TIKTOK__SUSPENSION_S": "-1"}, "CREDITWATCH_TIKTOK__SUSPENSION_S", "0"),
        (
            {"CREDITWATCH_TIKTOK__ENDPOINT_LIMITS": '{"/report/integrated/get/": {"qpm": 2}}'},
            "CREDITWATCH_TIKTOK__ENDPOINT_LIMITS",
            "/report/integrated/get/: 2 per minute is below its qps (10 per second)",
        ),
    ],
)
def test_contradictory_rate_limits_exit_2_naming_the_setting(
    env: dict[str, str], named: str, says: str, tmp_path: Path
) -> None:
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    [line] = result.stderr.strip().splitlines()
    assert named in line
    assert says in line
    assert "Traceback" not in result.stderr


def test_the_tier_gives_the_limits_and_explicit_ones_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("CREDITWATCH_")]:
        monkeypatch.delenv(name)
    basic = load_settings().tiktok
    assert (basic.tier, basic.qps, basic.qpm, basic.qpd) == ("basic", 10, 600, 864_000)
    assert basic.suspension_s == 300
    config = config_file(tmp_path, "tiktok:\n  tier: ultimate\n  qpm: 2000\n")
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    tiktok = load_settings().tiktok
    assert (tiktok.qps, tiktok.qpm, tiktok.qpd) == (50, 2000, 864_000)
    # The environment wins over the file, and the older QPS setting still works.
    monkeypatch.setenv("CREDITWATCH_TIKTOK__QPS", "4")
    tiktok = load_settings().tiktok
    assert (tiktok.qps, tiktok.qpm) == (4, 2000)


def test_check_config_prints_the_limits_in_effect(tmp_path: Path) -> None:
    result = creditwatch("check-config", env={"CREDITWATCH_TIKTOK__TIER": "advanced"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    tiktok = json.loads(result.stdout)["tiktok"]
    assert (tiktok["qps"], tiktok["qpm"], tiktok["qpd"]) == (20, 1200, 864_000)
