"""Settings and the command line: bad settings exit 2 naming the setting; secrets stay masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings

TOKEN = "tt-access-token-0123456789abcdef"
HOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def creditwatch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**clean, **env, "PYTHONPATH": str(Path(__file__).parent.parent)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        "notify:\n  webhooks:\n    - name: ops\n      url: ftp://example\n"
        f"      secret: {HOOK_SECRET}\n"
    )
    result = creditwatch("check-config", env={"CREDITWATCH_CONFIG_FILE": str(config)}, cwd=tmp_path)
    assert result.returncode == 2
    assert "notify.webhooks.0.url" in result.stderr
    assert HOOK_SECRET not in result.stderr + result.stdout


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "creditwatch.yaml"
    config.write_text(
        "notify:\n  webhooks:\n    - name: ops\n      url: https://hooks.example.com/cw\n"
        f"      secret: {HOOK_SECRET}\n      kinds: ['credit.*']\n"
    )
    env = {
        "CREDITWATCH_CONFIG_FILE": str(config),
        "CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN,
        "CREDITWATCH_TIKTOK__BC_IDS": "7001, 7002",
    }
    result = creditwatch("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["tiktok"]["bc_ids"] == ["7001", "7002"]
    assert shown["tiktok"]["access_token"] == "**********"
    assert shown["notify"]["webhooks"][0]["secret"] == "**********"
    assert shown["notify"]["webhooks"][0]["kinds"] == ["credit.*"]
    assert TOKEN not in result.stdout + result.stderr
    assert HOOK_SECRET not in result.stdout + result.stderr


def test_polling_the_real_api_needs_a_token(tmp_path: Path) -> None:
    result = creditwatch("poller", env={"CREDITWATCH_TIKTOK__BC_IDS": "7001"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "CREDITWATCH_TIKTOK__ACCESS_TOKEN" in result.stderr


def test_env_wins_over_the_file_and_lists_accept_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("tiktok:\n  qps: 4\n  bc_ids: ['1', '2']\npoll:\n  balance_interval_s: 60\n")
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
    config = tmp_path / "c.yaml"
    config.write_text("tiktok: [unclosed\n")
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(config))
    with pytest.raises(SettingsError, match="could not be read"):
        load_settings()
