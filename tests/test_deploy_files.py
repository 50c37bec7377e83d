"""docker-compose.yml and the Prometheus files parse, and name commands and metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config.settings import load_settings
from service.cli import _parser

ROOT = Path(__file__).parent.parent


def test_compose_runs_real_creditwatch_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "sandbox", "poller", "service", "mailpit", "prometheus"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    for name in ("sandbox", "poller", "service"):
        command = services[name]["command"]
        assert command[0] == "creditwatch"
        # argparse exits on an unknown command or option: that fails the test.
        assert _parser().parse_args(command[1:]).command == command[1]
    for mount in services["prometheus"]["volumes"]:
        assert (ROOT / mount.split(":")[0]).is_file()


def test_prometheus_rules_use_metrics_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"creditwatch_[a-z_]+", rule["expr"])
    }
    sources = "".join(
        p.read_text() for p in [*ROOT.glob("service/**/*.py"), *ROOT.glob("workers/**/*.py")]
    )
    defined = set(re.findall(r'"(creditwatch_[a-z_]+?)(?:_total)?"', sources))
    missing = {name.removesuffix("_total") for name in used} - defined
    assert not missing, f"rules use undefined metrics: {missing}"


def test_the_compose_service_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mount = next(v for v in compose["services"]["service"]["volumes"] if "creditwatch.yaml" in v)
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(ROOT / mount.split(":")[0]))
    settings = load_settings()
    assert settings.notify.receiver("mailpit").type == "email"
