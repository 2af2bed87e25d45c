"""`kubectl apply -k manifests/` installs LRSweep without Helm.

Covers: `kubectl kustomize manifests/` builds; every object validates against the Kubernetes
schemas (strict, CustomResourceDefinition included); the operator pod meets Pod Security
"restricted"; RBAC has no wildcards and no secrets; namespaced objects land in
lrsweep-system, which enforces "restricted"; the examples are not applied; the operator
Deployment is one replica, Recreate, with its liveness probe and resources, watching its own
namespace with a namespaced Role; the manifests grant exactly the rules the chart grants; the
metrics Service reaches the operator's metrics port.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.packaging.checks import all_violations
from tests.packaging.tools import helm_template, kustomize, named, only

NAMESPACE = "lrsweep-system"
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize()


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_object_is_valid_restricted_and_least_privilege(
    objects: list[dict[str, Any]],
) -> None:
    assert all_violations(objects) == []


def test_namespaced_objects_land_in_lrsweep_system(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]
    for binding in named(objects, "ClusterRoleBinding").values():
        assert {s["namespace"] for s in binding["subjects"]} == {NAMESPACE}


def test_the_namespace_enforces_pod_security_restricted(objects: list[dict[str, Any]]) -> None:
    labels = only(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_examples_are_not_applied(objects: list[dict[str, Any]]) -> None:
    assert not [o for o in objects if o["kind"] == "LRSweep"]


def test_the_operator_is_one_replica_recreated_probed_and_bounded(
    objects: list[dict[str, Any]],
) -> None:
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz"
    assert ports[probe["port"]] == int(_env(deployment)["LRSWEEP_HEALTH_PORT"])
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_the_operator_watches_its_own_namespace(objects: list[dict[str, Any]]) -> None:
    env = _env(only(objects, "Deployment"))
    assert "LRSWEEP_CLUSTERWIDE" not in env
    assert "LRSWEEP_NAMESPACES" not in env
    assert env["LRSWEEP_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_operators_rules_are_a_namespaced_role(objects: list[dict[str, Any]]) -> None:
    assert named(objects, "Role")[f"{NAMESPACE}/lrsweep-operator"]
    binding = named(objects, "RoleBinding")[f"{NAMESPACE}/lrsweep-operator"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "lrsweep-operator",
    }
    assert "lrsweep-operator" not in named(objects, "ClusterRole")


def test_the_manifests_grant_exactly_the_charts_rules(objects: list[dict[str, Any]]) -> None:
    chart = helm_template("--set", "operator.clusterWide=true")
    theirs = named(chart, "ClusterRole")
    role = named(objects, "Role")[f"{NAMESPACE}/lrsweep-operator"]
    assert role["rules"] == theirs["lrsweep"]["rules"]
    discovery = named(objects, "ClusterRole")["lrsweep-operator-discovery"]
    assert discovery["rules"] == theirs["lrsweep-discovery"]["rules"]


def test_the_metrics_service_reaches_the_operator(objects: list[dict[str, Any]]) -> None:
    service = only(objects, "Service")
    pod = only(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    target = service["spec"]["ports"][0]["targetPort"]
    assert ports[target] == int(_env(only(objects, "Deployment"))["LRSWEEP_METRICS_PORT"])
