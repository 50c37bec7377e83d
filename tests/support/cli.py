"""The ``creditwatch`` command line run as a subprocess, as a user runs it, with only the
environment a test gives it (no ``CREDITWATCH_*`` of the caller's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.settings import Settings
from tests.support.paths import ROOT


def creditwatch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``creditwatch ARGS`` run to its end, its output captured as text."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def config_file(tmp_path: Path, text: str) -> Path:
    """A ``creditwatch.yaml`` holding ``text`` in the test's own folder."""
    config = tmp_path / "creditwatch.yaml"
    config.write_text(text)
    return config


def check_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``creditwatch check-config`` on a config file holding ``text``, nothing else set."""
    env = {"CREDITWATCH_CONFIG_FILE": str(config_file(tmp_path, text))}
    return creditwatch("check-config", env=env, cwd=tmp_path)


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points the command line at a test's own Redis and key prefix."""
    return {
        "CREDITWATCH_REDIS_URL": settings.redis_url or "",
        "CREDITWATCH_STREAMS__PREFIX": settings.streams.prefix,
        **extra,
    }


def refused_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``check_config`` on a file it must refuse (exit 2); its output is the caller's to check."""
    result = check_config(tmp_path, text)
    assert result.returncode == 2, result.stdout + result.stderr
    return result
