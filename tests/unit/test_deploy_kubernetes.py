"""The kustomize base (deploy/kubernetes/) renders, and what it deploys would really run.

Checked on the rendered output of ``kubectl kustomize`` (skipped, saying so, without kubectl;
``make kubectl`` installs Debian's) and, always, on the source manifests themselves: the
Deployments' env names real settings and takes every secret from a Secret, the ConfigMap's
config validates with that env, the probes hit the paths and port the processes serve, and the
PrometheusRule is deploy/prometheus/rules.yml.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from config.settings import ENV_PREFIX, Settings, load_settings
from tests.support.paths import ROOT

BASE = ROOT / "deploy/kubernetes/base"
OVERLAY = ROOT / "deploy/kubernetes/overlays/example"
CONFIG_KEY = "creditwatch.yaml"
# A generated ConfigMap's name: its generator's, then (rendered) a content hash.
HASHED = r"{}(-[a-z0-9]{{10}})?"
SECRET = "creditwatch-secrets"
# The Kubernetes releases whose schemas the objects are checked against: the oldest that
# kubernetes-validate ships and its newest (policy/v1 PDBs need 1.21+).
SCHEMA_VERSIONS = ("1.25", kubernetes_validate.latest_version())
# Stand-ins for the Secret's values, shaped as the settings want them.
SECRET_VALUES = {
    "redis-url": "redis://redis:6379/0",
    "tiktok-access-token": "a-test-access-token",
    "tiktok-app-secret": "a-test-app-secret",
    "api-tokens": "a-test-api-token-0001,a-test-api-token-0002",
    "metrics-token": "a-test-api-token-0001",
    "webhook-secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "smtp-password": "a-test-smtp-password",
}
EXPECTED_KINDS = {
    ("ConfigMap", "creditwatch-config"),
    ("Deployment", "creditwatch-poller"),
    ("Deployment", "creditwatch-service"),
    ("Service", "creditwatch"),
    ("Service", "creditwatch-poller"),
    ("PodDisruptionBudget", "creditwatch-poller"),
    ("PodDisruptionBudget", "creditwatch-service"),
    ("ServiceMonitor", "creditwatch"),
    ("ServiceMonitor", "creditwatch-poller"),
    ("PrometheusRule", "creditwatch"),
}


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (`make kubectl` installs Debian's kubernetes-client)")
    return kubectl


def _render(folder: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_kustomize(_kubectl(), folder)) if doc]


@functools.cache
def _kustomize(kubectl: str, folder: Path) -> str:
    """``kubectl kustomize folder``'s output (once per run: it takes about a second)."""
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _kustomize_version() -> tuple[int, ...]:
    done = subprocess.run(
        [_kubectl(), "version", "--client"], check=False, capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Kustomize Version: v(\d+)\.(\d+)", done.stdout)
    # kubectl before 1.21 prints no kustomize version: it embeds kustomize v2.0.3.
    return tuple(int(part) for part in found.groups()) if found else (2, 0)


def _source_objects() -> list[dict[str, Any]]:
    """The base as written: its resources, and the ConfigMap its generator would make."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((BASE / resource).read_text()) if doc]
    for generator in kustomization["configMapGenerator"]:
        data = {Path(f).name: (BASE / f).read_text() for f in generator["files"]}
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}}
            | {"data": data}
        )
    return objects


@pytest.fixture(params=["source", "rendered"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _source_objects() if request.param == "source" else _render(BASE)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects
        if o["kind"] == kind and re.fullmatch(HASHED.format(re.escape(name)), o["metadata"]["name"])
    ]
    return found


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _settings_for(
    objects: list[dict[str, Any]], deployment: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> Settings:
    """The settings the container would start with: its env, Secret stand-ins, the config."""
    config_map = _one(objects, "ConfigMap", "creditwatch-config")
    (mount,) = [
        m for m in _container(deployment)["volumeMounts"] if m["mountPath"] == "/etc/creditwatch"
    ]
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    # Rendered, the volume must name the ConfigMap with its hash suffix: kustomize rewrote it.
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    (tmp_path / CONFIG_KEY).write_text(config_map["data"][CONFIG_KEY])
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for var in _container(deployment)["env"]:
        value = var.get("value")
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET
            value = SECRET_VALUES[ref["key"]]
        if var["name"] == f"{ENV_PREFIX}CONFIG_FILE":
            assert value == f"{mount['mountPath']}/{CONFIG_KEY}"
            value = str(tmp_path / CONFIG_KEY)
        monkeypatch.setenv(var["name"], value)
    return load_settings()


def _setting(settings: Settings, env_name: str) -> object:
    """The value ``CREDITWATCH_A__B`` sets: ``settings.a.b`` (fails on a name that is none)."""
    value: object = settings
    for part in env_name.removeprefix(ENV_PREFIX).lower().split("__"):
        assert isinstance(value, BaseModel), f"{env_name}: {part} is not a section"
        assert part in type(value).model_fields, f"{env_name}: no setting {part!r}"
        value = getattr(value, part)
    return value


def _is_secret(value: object) -> bool:
    return isinstance(value, SecretStr) or (
        isinstance(value, list) and any(isinstance(v, SecretStr) for v in value)
    )


def test_the_base_renders_every_object(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert len(kinds) == len(EXPECTED_KINDS)
    for kind, name in EXPECTED_KINDS:
        _one(objects, kind, name)
    assert not [o for o in objects if o["kind"] == "Secret"], "secrets are never in the kit"


@pytest.mark.parametrize("role", ["poller", "service"])
def test_env_names_real_settings_and_secrets_come_from_the_secret(
    objects: list[dict[str, Any]], role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = _one(objects, "Deployment", f"creditwatch-{role}")
    settings = _settings_for(objects, deployment, tmp_path, monkeypatch)
    config = _one(objects, "ConfigMap", "creditwatch-config")["data"][CONFIG_KEY]
    for var in _container(deployment)["env"]:
        name = var["name"]
        from_secret = "secretKeyRef" in var.get("valueFrom", {})
        if name.startswith(ENV_PREFIX):
            value = _setting(settings, name)
            if _is_secret(value) or name == f"{ENV_PREFIX}REDIS_URL":
                assert from_secret, f"{name} is a secret: it must come from {SECRET}"
        else:
            # Not a setting: a ${VAR} the config file reads a secret from.
            assert f"${{{name}}}" in config, f"{name} is neither a setting nor used by the config"
            assert from_secret, f"{name} must come from {SECRET}"
    if role == "poller":
        assert (
            settings.tiktok.access_token.get_secret_value() == SECRET_VALUES["tiktok-access-token"]
        )
        # The Basic tier's 10 QPS split between the replicas (the budget is per process).
        replicas = deployment["spec"]["replicas"]
        assert settings.tiktok.qps * replicas <= 10
        assert settings.tiktok.qpm * replicas <= 600
    else:
        assert [t.get_secret_value() for t in settings.api.tokens] == SECRET_VALUES[
            "api-tokens"
        ].split(",")
    receiver = settings.notify.receiver("ops-hook")
    assert receiver is not None and receiver.type == "webhook"
    assert [s.get_secret_value() for s in receiver.signing_secrets] == [
        SECRET_VALUES["webhook-secret"]
    ]


def test_no_literal_secret_anywhere(objects: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(objects)
    assert "whsec_" not in text
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        for var in _container(deployment)["env"]:
            if re.search(r"TOKEN|SECRET|PASSWORD|REDIS_URL", var["name"]):
                assert "value" not in var, f"{var['name']} has a literal value"


@pytest.mark.parametrize(("role", "readiness"), [("poller", "/healthz"), ("service", "/readyz")])
def test_probes_hit_the_paths_and_port_the_process_serves(
    objects: list[dict[str, Any]],
    role: str,
    readiness: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = _one(objects, "Deployment", f"creditwatch-{role}")
    settings = _settings_for(objects, deployment, tmp_path, monkeypatch)
    container = _container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The process listens on api.host:api.port (the poller's /healthz and /metrics too).
    assert settings.api.host == "0.0.0.0"
    assert ports == {"http": settings.api.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": readiness, "port": "http"}
    assert container["command"] == ["creditwatch", role]


@pytest.mark.parametrize("role", ["poller", "service"])
def test_pods_run_unprivileged_within_measured_resources(
    objects: list[dict[str, Any]], role: str
) -> None:
    deployment = _one(objects, "Deployment", f"creditwatch-{role}")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # With a read-only root the data dir must be on the writable emptyDir.
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    data_dir = next(v["value"] for v in container["env"] if v["name"] == "CREDITWATCH_DATA_DIR")
    assert any(data_dir.startswith(path + "/") for path in writable)
    limit = container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["memory"]
    if role == "service":
        # Benchmark 5: 104 MB RSS with 100,000 advertisers; the limit leaves headroom.
        assert limit.endswith("Mi") and int(limit[:-2]) >= 200


def test_budgets_services_and_monitors_select_the_pods(objects: list[dict[str, Any]]) -> None:
    for role, service_name in [("poller", "creditwatch-poller"), ("service", "creditwatch")]:
        deployment = _one(objects, "Deployment", f"creditwatch-{role}")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["replicas"] >= 2
        (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
        budget = _one(objects, "PodDisruptionBudget", f"creditwatch-{role}")
        assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        service = _one(objects, "Service", service_name)
        assert service["spec"]["selector"].items() <= labels.items()
        assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
        monitor = _one(objects, "ServiceMonitor", service_name)
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        )
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    # The service's /metrics wants a token (api.metrics_public is false); it is one of the API's.
    (endpoint,) = _one(objects, "ServiceMonitor", "creditwatch")["spec"]["endpoints"]
    credentials = endpoint["authorization"]["credentials"]
    assert credentials["name"] == SECRET
    assert SECRET_VALUES[credentials["key"]] in SECRET_VALUES["api-tokens"].split(",")


def test_the_rules_jobs_are_the_service_names(objects: list[dict[str, Any]]) -> None:
    # The Prometheus Operator names a ServiceMonitor's job after the Service.
    rules = _one(objects, "PrometheusRule", "creditwatch")["spec"]
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', yaml.safe_dump(rules)))
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    assert jobs == services


def test_the_prometheusrule_is_the_rules_file() -> None:
    rule = yaml.safe_load((BASE / "prometheusrule.yaml").read_text())
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    assert rule["spec"] == rules, "regenerate it: make prometheusrule"


def test_the_example_overlay_renders_its_changes() -> None:
    if _kustomize_version() < (3, 0):
        pytest.skip("the overlay needs kustomize v3+ (kubectl 1.21+); the base renders anyway")
    objects = _render(OVERLAY)
    assert {o["metadata"].get("namespace") for o in objects} == {"creditwatch"}
    service = _one(objects, "Deployment", "creditwatch-service")
    assert service["spec"]["replicas"] == 3
    images = {_container(o)["image"] for o in objects if o["kind"] == "Deployment"}
    assert images == {"registry.example.com/creditwatch:1.0.0"}
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert "7000000000002" in config["data"][CONFIG_KEY]
    # Probes, security and secret references come from the base unchanged.
    assert _container(service)["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_built_in_objects_match_the_kubernetes_schemas(objects: list[dict[str, Any]]) -> None:
    # Strict: a misspelt or misplaced field (which kubectl kustomize renders happily) fails.
    # The custom resources (ServiceMonitor, PrometheusRule) have no schema here; the tests
    # above check the fields they need.
    built_in = [o for o in objects if o["kind"] not in {"ServiceMonitor", "PrometheusRule"}]
    for version in SCHEMA_VERSIONS:
        for obj in built_in:
            kubernetes_validate.validate(obj, version, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(_one(objects, "Deployment", "creditwatch-service")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSIONS[0], strict=True)
