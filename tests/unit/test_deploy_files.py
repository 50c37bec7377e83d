"""docker-compose.yml and the Prometheus files parse, and name commands and metrics that exist.

The rules' alert cases are unit-tested by promtool (deploy/prometheus/rules_test.yml, `make
test-rules`)."""

from __future__ import annotations

import pytest
import yaml

from config.settings import load_settings
from service.cli import _parser
from tests.support.declared_metrics import promql_problems
from tests.support.paths import ROOT


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


def test_prometheus_rules_use_metrics_and_labels_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    problems = {
        rule["alert"]: promql_problems(rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    }
    assert {alert: found for alert, found in problems.items() if found} == {}


def test_the_compose_service_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mount = next(v for v in compose["services"]["service"]["volumes"] if "creditwatch.yaml" in v)
    monkeypatch.setenv("CREDITWATCH_CONFIG_FILE", str(ROOT / mount.split(":")[0]))
    settings = load_settings()
    assert settings.notify.receiver("mailpit").type == "email"


def test_prometheus_scrapes_the_service_with_one_of_its_api_tokens() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    tokens = compose["services"]["service"]["environment"]["CREDITWATCH_API__TOKENS"].split(",")
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "creditwatch")
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials"] in tokens
