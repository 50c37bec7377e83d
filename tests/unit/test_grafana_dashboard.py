"""The Grafana dashboard (deploy/grafana/) queries metrics the code declares, with their labels,
covers what an operator watches, and is provisioned into docker-compose's Grafana."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.declared_metrics import promql_problems
from tests.support.paths import ROOT

DASHBOARD = ROOT / "deploy/grafana/creditwatch.json"
# What Grafana puts for its variables before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h", "$qps": "10"}


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _as_prometheus_gets_it(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    return query


@pytest.mark.parametrize("expr", _exprs())
def test_every_query_uses_declared_metrics_and_labels(expr: str) -> None:
    assert promql_problems(expr) == []


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (`make promtool` installs Debian's prometheus)")
    # promtool parses a rule's expression as Prometheus would: one recording rule per query.
    rules = []
    for n, query in enumerate(_exprs()):
        expr = _as_prometheus_gets_it(query)
        assert "$" not in expr, f"a Grafana variable left in {expr!r}"
        rules.append({"record": f"creditwatch:dashboard_query_{n}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checker_catches_a_misspelt_metric_or_label() -> None:
    # The check above would pass vacuously if it could not fail: show that it does.
    assert promql_problems("rate(creditwatch_deliveries_totl[5m])")
    assert promql_problems('creditwatch_deliveries_total{outcom="failed"}')
    assert promql_problems("sum by (recevier) (creditwatch_deliveries_total)")


def test_the_panels_cover_what_operators_watch() -> None:
    exprs = {panel["title"]: " ".join(t["expr"] for t in panel["targets"]) for panel in _panels()}
    wanted = {
        "API budget used": "creditwatch_api_calls_total",
        "Data age": "creditwatch_data_age_seconds",
        "Detection lag": 'creditwatch_consumer_group_lag{stream="snapshots", group="detectors"}',
        "Alerts by kind": "creditwatch_alert_transitions_total",
        "Deliveries by outcome": "creditwatch_deliveries_total",
        "Delivery failures": 'outcome=~"failed|gone"',
        "Dead letters": "creditwatch_deadlettered_total",
        "Consumer lag": "creditwatch_consumer_group_lag",
    }
    for title, metric in wanted.items():
        assert metric in exprs.get(title, ""), f"panel {title!r} should query {metric}"


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "qps"} <= names
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area


def test_compose_grafana_is_provisioned_with_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {
        m.split(":")[1]: ROOT / m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]
    }
    for source in mounts.values():
        assert source.exists(), source
    assert mounts["/var/lib/grafana/dashboards/creditwatch.json"] == DASHBOARD
    providers = mounts["/etc/grafana/provisioning/dashboards"] / "creditwatch.yml"
    paths = [p["options"]["path"] for p in yaml.safe_load(providers.read_text())["providers"]]
    assert paths == ["/var/lib/grafana/dashboards"]
    sources = mounts["/etc/grafana/provisioning/datasources"] / "prometheus.yml"
    (source,) = yaml.safe_load(sources.read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]
