"""The Helm chart `charts/lrsweep`, rendered by the real helm.

Covers: `helm lint --strict` with the defaults and with values-gpu.yaml; for the defaults,
every monitoring flag on, cluster-wide, listed namespaces, the GPU values and every optional
value set, every rendered
built-in object validates against the Kubernetes schemas (strict), every pod meets Pod
Security "restricted", RBAC has no wildcards and no secrets; monitoring objects appear only
when flagged *and* the monitoring.coreos.com/v1 API exists (NOTES warns otherwise); the
Deployment is one replica, Recreate, probed at kopf's /healthz, bounded, with settings the
operator's settings model accepts and the chart's appVersion as image tag; RBAC is
namespaced by default (a Role per watched namespace, a read-only cluster role for CRDs and
namespaces) and cluster-wide on request with the same rules; the ServiceMonitor selects the
metrics Service and keeps the sweeps' namespace label; the PodMonitor selects the pods the
operator launches, on their `metrics` port, in the watched namespaces; the dashboard
ConfigMap carries the sidecar's label and the committed dashboard; the values schema refuses
unknown keys and wrong types; every value is documented; names stay within 63 characters;
the GPU values keep the operator off GPU nodes; the packaged chart carries the dashboard,
rules, CRD and schema but not the dashboard's generator.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from lrsweep.api import load_sweep
from lrsweep.engine.sweep import Launch
from lrsweep.runtime.pods import LABEL_SWEEP, build_trial_pod
from lrsweep.settings import OperatorSettings
from tests.packaging.checks import all_violations, rbac_rules
from tests.packaging.tools import CHART, MANIFESTS, helm_template, named, only, run, tool

RELEASE_NAMESPACE = "lrsweep-system"
MONITORING_API = ("monitoring.coreos.com/v1",)
MONITORING_FLAGS = (
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.podMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "grafanaDashboard.enabled=true",
)
GPU_VALUES = CHART / "values-gpu.yaml"
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "defaults": ((), ()),
    "monitoring": (MONITORING_FLAGS, MONITORING_API),
    "cluster-wide": ((*MONITORING_FLAGS, "--set", "operator.clusterWide=true"), MONITORING_API),
    "watch-namespaces": (
        (*MONITORING_FLAGS, "--set", "operator.watchNamespaces={ml,research}"),
        MONITORING_API,
    ),
    "gpu-values": (("-f", str(GPU_VALUES)), MONITORING_API),
    "every-option": (
        ("-f", str(Path(__file__).with_name("values-every-option.yaml"))),
        MONITORING_API,
    ),
}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


@functools.cache
def render(case: str) -> list[dict[str, Any]]:
    args, apis = CASES[case]
    return helm_template(*args, api_versions=apis)


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = only(objects, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(objects)["env"]}


def _helm_fails(*args: str) -> str:
    done = subprocess.run(
        [tool("helm"), "template", "lrsweep", str(CHART), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout
    return done.stderr


@pytest.mark.parametrize("values", [(), ("-f", str(GPU_VALUES))], ids=["defaults", "gpu"])
def test_helm_lint_passes_strictly(values: tuple[str, ...]) -> None:
    out = run([tool("helm"), "lint", "--strict", str(CHART), *values])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_are_valid_restricted_and_least_privilege(case: str) -> None:
    assert all_violations(render(case)) == []


def test_defaults_render_no_monitoring_objects() -> None:
    kinds = {o["kind"] for o in render("defaults")}
    assert not kinds & MONITORING_KINDS
    assert not named(render("defaults"), "ConfigMap")


def test_monitoring_objects_need_the_prometheus_operator_api() -> None:
    kinds = {o["kind"] for o in helm_template(*MONITORING_FLAGS)}
    assert not kinds & MONITORING_KINDS


def test_notes_warn_when_monitoring_is_flagged_without_the_api() -> None:
    out = run(
        [tool("helm"), "install", "lrsweep", str(CHART), "--dry-run=client", *MONITORING_FLAGS]
    )
    notes = out[out.index("NOTES:") :]
    assert "monitoring.coreos.com/v1" in notes
    assert "never upgraded by Helm" in notes


def test_every_monitoring_flag_renders_its_object() -> None:
    objects = render("monitoring")
    for kind in MONITORING_KINDS:
        assert len(named(objects, kind)) == 1, kind
    assert len(named(objects, "ConfigMap")) == 1


def test_operator_is_one_replica_recreated_probed_at_healthz_and_bounded() -> None:
    objects = render("defaults")
    spec = only(objects, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    container = _container(objects)
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz"
    assert ports[probe["port"]] == OperatorSettings().health_port
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("case", ["defaults", "cluster-wide", "watch-namespaces"])
def test_operator_env_is_accepted_by_the_settings_model(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(render(case))
    known = {f"LRSWEEP_{name.upper()}" for name in OperatorSettings.model_fields}
    assert set(env) <= known
    assert env["LRSWEEP_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    OperatorSettings()


def test_the_start_grace_reaches_the_operator() -> None:
    assert _env(render("defaults"))["LRSWEEP_START_GRACE_SECONDS"] == "300"
    assert _env(render("every-option"))["LRSWEEP_START_GRACE_SECONDS"] == "900"


def test_the_progress_deadline_reaches_the_operator() -> None:
    assert _env(render("defaults"))["LRSWEEP_PROGRESS_DEADLINE_SECONDS"] == "1800"
    assert _env(render("every-option"))["LRSWEEP_PROGRESS_DEADLINE_SECONDS"] == "3600"


def test_the_progress_write_interval_reaches_the_operator() -> None:
    assert _env(render("defaults"))["LRSWEEP_PROGRESS_WRITE_INTERVAL"] == "10"
    assert _env(render("every-option"))["LRSWEEP_PROGRESS_WRITE_INTERVAL"] == "30"


def test_the_image_tag_defaults_to_the_app_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = _container(render("defaults"))["image"]
    assert image == f"ghcr.io/lrsweep/lrsweep-operator:{chart['appVersion']}"


def test_by_default_the_operator_watches_and_acts_in_its_own_namespace_only() -> None:
    objects = render("defaults")
    assert _env(objects)["LRSWEEP_NAMESPACES"] == RELEASE_NAMESPACE
    assert set(named(objects, "Role")) == {f"{RELEASE_NAMESPACE}/lrsweep"}
    assert set(named(objects, "RoleBinding")) == {f"{RELEASE_NAMESPACE}/lrsweep"}
    (discovery,) = named(objects, "ClusterRole").values()
    for rule in rbac_rules(discovery):
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert set(rule["resources"]) <= {"customresourcedefinitions", "namespaces"}


def test_listed_namespaces_each_get_a_role_and_are_watched() -> None:
    objects = render("watch-namespaces")
    assert _env(objects)["LRSWEEP_NAMESPACES"] == "ml,research"
    assert set(named(objects, "Role")) == {"ml/lrsweep", "research/lrsweep"}
    for binding in named(objects, "RoleBinding").values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "lrsweep", "namespace": RELEASE_NAMESPACE}
        ]


def test_cluster_wide_grants_the_namespaced_rules_cluster_wide() -> None:
    objects = render("cluster-wide")
    assert _env(objects)["LRSWEEP_CLUSTERWIDE"] == "true"
    assert not named(objects, "Role")
    role_rules = only(render("defaults"), "Role")["rules"]
    assert named(objects, "ClusterRole")["lrsweep"]["rules"] == role_rules
    binding = named(objects, "ClusterRoleBinding")["lrsweep"]
    assert binding["roleRef"]["name"] == "lrsweep"


def test_the_operator_rules_cover_what_it_does() -> None:
    rules = {
        (group, resource): set(rule["verbs"])
        for rule in only(render("defaults"), "Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules[("lrsweep.dev", "lrsweeps")] >= {"get", "list", "watch", "patch"}
    assert rules[("lrsweep.dev", "lrsweeps/status")] >= {"patch"}
    assert rules[("", "pods")] >= {"list", "create", "delete"}
    assert rules[("", "configmaps")] >= {"create", "update"}
    assert rules[("", "events")] >= {"create"}
    assert rules[("events.k8s.io", "events")] >= {"create"}


def test_the_service_monitor_scrapes_the_metrics_service_keeping_sweep_namespaces() -> None:
    objects = render("monitoring")
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["honorLabels"] is True


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for expression in selector.get("matchExpressions", []):
        key, op = expression["key"], expression["operator"]
        if op == "Exists" and key not in labels:
            return False
        if op == "In" and labels.get(key) not in expression["values"]:
            return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize(
    ("case", "namespaces"),
    [
        ("monitoring", {"matchNames": [RELEASE_NAMESPACE]}),
        ("watch-namespaces", {"matchNames": ["ml", "research"]}),
        ("cluster-wide", {"any": True}),
    ],
)
def test_the_pod_monitor_scrapes_the_trial_pods_the_operator_launches(
    case: str, namespaces: dict[str, Any]
) -> None:
    sweep = load_sweep((MANIFESTS / "examples" / "quickstart.yaml").read_text())
    body = {"metadata": {"name": "quickstart", "namespace": "ml", "uid": "u"}}
    launch = Launch("t000", 1, 0.1, 0, "train", 300, 25, ())
    pod = build_trial_pod(body, sweep.spec, launch)
    monitor = only(render(case), "PodMonitor")["spec"]
    assert LABEL_SWEEP in pod["metadata"]["labels"]
    assert _selects(monitor["selector"], pod["metadata"]["labels"])
    (endpoint,) = monitor["podMetricsEndpoints"]
    pod_ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] in pod_ports
    assert monitor["namespaceSelector"] == namespaces


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_dashboard() -> None:
    configmap = only(render("monitoring"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = json.loads((CHART / "dashboards" / "lrsweep.json").read_text())
    assert json.loads(configmap["data"]["lrsweep.json"]) == committed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "bogus=1"), "bogus"),
        (("--set", "operator.clusterWide=yes"), "clusterWide"),
        (("--set", "operator.metricsPort=70000"), "metricsPort"),
        (("--set", "metrics.podMonitor.interval=often"), "interval"),
    ],
)
def test_the_values_schema_refuses_bad_values(args: tuple[str, ...], message: str) -> None:
    assert message in _helm_fails(*args)


def _undocumented(lines: list[str]) -> list[str]:
    """Keys of values.yaml lacking a `# --` comment (helm-docs style).

    A documented key covers everything nested under it (e.g. a whole securityContext); an
    undocumented key is fine only as a heading whose own keys are documented.
    """
    keys: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z]\w*):", line)
        if match is None:
            continue
        above = i - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            above -= 1
        documented = any(lines[j].strip().startswith("# --") for j in range(above + 1, i))
        keys.append((len(match.group(1)), match.group(2), documented))
    missing: list[str] = []
    ancestors: list[tuple[int, bool]] = []
    for n, (indent, key, documented) in enumerate(keys):
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        covered = any(doc for _, doc in ancestors)
        heading = n + 1 < len(keys) and keys[n + 1][0] > indent
        if not (documented or covered or heading):
            missing.append(key)
        ancestors.append((indent, documented))
    return missing


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    assert _undocumented(lines) == []


def test_names_stay_within_63_characters() -> None:
    release = "sweeps-" + "x" * 46  # 53 characters: the longest release name helm accepts
    for obj in helm_template(*MONITORING_FLAGS, api_versions=MONITORING_API, release=release):
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]


def test_the_gpu_values_keep_the_operator_off_gpu_nodes() -> None:
    objects = render("gpu-values")
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expressions = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]} in (
        expressions
    )
    assert "nvidia.com/gpu" not in json.dumps(_container(objects)["resources"])


def test_the_packaged_chart_carries_dashboard_rules_and_crd_but_not_the_generator(
    tmp_path: Path,
) -> None:
    run([tool("helm"), "package", str(CHART), "--destination", str(tmp_path)])
    (archive,) = tmp_path.glob("lrsweep-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "lrsweep/dashboards/lrsweep.json" in names
    assert "lrsweep/files/prometheus-rules.yaml" in names
    assert "lrsweep/crds/lrsweep.dev_lrsweeps.yaml" in names
    assert "lrsweep/values.schema.json" in names
    assert not [n for n in names if n.endswith(".py")]
