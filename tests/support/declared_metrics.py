"""The metrics the code declares, read from its prometheus_client calls, and PromQL checks.

Deploy files (Prometheus rules, the Grafana dashboard) must query series the code really
exposes, with labels those series really carry. The declarations are read from the source's
syntax tree (``Counter("creditwatch_x", "help", ["label"])``), not from a scrape: a labelled
metric shows no series until its first increment, so a scrape would miss it.

Usage::

    problems = promql_problems('sum by (kind) (rate(creditwatch_alert_transitions_total[5m]))')
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from tests.support.paths import ROOT

# The series each metric type exposes, by suffix (prometheus_client's exposition).
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}
NOT_CODE = frozenset({"tests", "bench"})
# Labels Prometheus adds to every scraped series, and PromQL words that look like names.
_TARGET_LABELS = frozenset({"job", "instance", "le", "namespace", "pod", "service"})
_METRIC = re.compile(r"\b(creditwatch_[A-Za-z0-9_]+|up)\b(?!\s*\()")
_SELECTOR = re.compile(r"\b(creditwatch_[A-Za-z0-9_]+|up)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@functools.cache
def declared_series() -> dict[str, frozenset[str]]:
    """Every series name the project's code exposes -> its label names."""
    series: dict[str, frozenset[str]] = {"up": frozenset()}
    for path in _code_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            declared = _declaration(node)
            if declared is None:
                continue
            kind, name, labels = declared
            base = name.removesuffix("_total") if kind == "Counter" else name
            for suffix in _SUFFIXES[kind]:
                series[base + suffix] = labels
    return series


def _code_files() -> list[Path]:
    """The project's modules: every package at the top of the tree but the tests and benches."""
    packages = [
        d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name not in NOT_CODE
    ]
    return [path for package in packages for path in package.rglob("*.py")]


def _declaration(node: ast.AST) -> tuple[str, str, frozenset[str]] | None:
    """``(type, name, labels)`` of a prometheus_client metric constructor call, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    name = node.args[0]
    if kind not in _SUFFIXES or not isinstance(name, ast.Constant):
        return None
    if not isinstance(name.value, str) or not name.value.startswith("creditwatch_"):
        return None
    labels_node = node.args[2] if len(node.args) > 2 else None
    for keyword in node.keywords:
        if keyword.arg == "labelnames":
            labels_node = keyword.value
    labels = frozenset(ast.literal_eval(labels_node)) if labels_node is not None else frozenset()
    return kind, name.value, labels


def promql_problems(expr: str) -> list[str]:
    """What in ``expr`` the code does not back: unknown metrics, labels no metric of it has."""
    series = declared_series()
    used = set(_METRIC.findall(expr))
    problems = [f"{name}: no such metric in the code" for name in sorted(used - set(series))]
    if not used:
        problems.append("queries no creditwatch metric")
    for name, matchers in _SELECTOR.findall(expr):
        for label in _MATCHER_LABEL.findall(matchers):
            if label not in series.get(name, frozenset()) | _TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    known = set(_TARGET_LABELS).union(*(series.get(name, frozenset()) for name in used))
    for grouping in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            if label not in known:
                problems.append(f"grouping by {label!r}, which none of {sorted(used)} has")
    return problems
