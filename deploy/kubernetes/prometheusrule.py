"""Writes base/prometheusrule.yaml: deploy/prometheus/rules.yml wrapped as a PrometheusRule.

One rules file serves docker-compose's Prometheus and the Prometheus Operator; this copies it,
comments included, under the custom resource's ``spec``. ``make prometheusrule`` runs it, and
tests/unit/test_deploy_kubernetes.py fails when the two disagree.

Usage::

    python deploy/kubernetes/prometheusrule.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "rules.yml"
TARGET = HERE / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by `make prometheusrule`: edit that file instead.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: creditwatch
  labels:
    app.kubernetes.io/name: creditwatch
    app.kubernetes.io/part-of: creditwatch
spec:
"""


def render(rules: str) -> str:
    """The PrometheusRule manifest holding ``rules`` (a Prometheus rules file) as its spec."""
    body = "".join(f"  {line}" if line.strip() else line for line in rules.splitlines(True))
    return HEADER + body


if __name__ == "__main__":
    TARGET.write_text(render(RULES.read_text()))
    print(f"wrote {TARGET.relative_to(HERE.parent.parent)}")
