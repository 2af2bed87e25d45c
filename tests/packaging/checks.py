"""Checks applied to every rendered object: Kubernetes schemas, Pod Security "restricted",
and least-privilege RBAC. Each returns the violations it finds (empty: all good), so a test
failure names every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import kubernetes_validate

from tests.packaging.tools import KUBE_VERSION

# Kinds served by the Prometheus Operator's CRDs: kubernetes-validate has schemas for
# built-in kinds only (CustomResourceDefinition included). Their content is checked by
# dedicated tests (selectors, ports, promtool).
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com/"

_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def schema_violations(obj: Mapping[str, Any]) -> list[str]:
    """The object against the Kubernetes OpenAPI schema, strict: unknown fields are errors."""
    if obj["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP):
        return []
    where = f"{obj['kind']}/{obj['metadata'].get('name')}"
    try:
        kubernetes_validate.validate(dict(obj), KUBE_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no Kubernetes {KUBE_VERSION} schema for {obj['apiVersion']}"]
    except kubernetes_validate.ValidationError as err:
        path = "/".join(str(p) for p in err.path)
        return [f"{where}: {path}: {err.message}"]
    return []


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec an object runs, if any."""
    if obj["kind"] == "Pod":
        spec: Mapping[str, Any] = obj["spec"]
        return spec
    if obj["kind"] in _POD_TEMPLATE_KINDS:
        template: Mapping[str, Any] = obj["spec"]["template"]["spec"]
        return template
    if obj["kind"] == "CronJob":
        job: Mapping[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return job
    return None


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def restricted_violations(spec: Mapping[str, Any]) -> list[str]:
    """Pod Security Standard "restricted" (which includes "baseline"), for one pod spec."""
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod: {field} is set")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("pod: securityContext.seccompProfile.type is not RuntimeDefault")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod: runAsUser is 0")
    for c in _containers(spec):
        name = f"container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {sorted(added)}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        profile = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{name}: uses a hostPort")
    return problems


def rbac_rules(obj: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if obj["kind"] in ("Role", "ClusterRole"):
        rules: Sequence[Mapping[str, Any]] = obj.get("rules") or []
        return rules
    return []


def rbac_violations(obj: Mapping[str, Any]) -> list[str]:
    """No wildcards anywhere, no access to secrets, no aggregation or escalation verbs."""
    problems: list[str] = []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    if obj.get("aggregationRule"):
        problems.append(f"{where}: aggregationRule")
    for rule in rbac_rules(obj):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            if any("*" in item for item in rule.get(field) or []):
                problems.append(f"{where}: wildcard in {field}: {rule}")
        if any(r.split("/")[0] == "secrets" for r in rule.get("resources") or []):
            problems.append(f"{where}: grants access to secrets: {rule}")
        if set(rule.get("verbs") or []) & {"escalate", "bind", "impersonate"}:
            problems.append(f"{where}: grants escalate/bind/impersonate: {rule}")
    return problems


def all_violations(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Schema, Pod Security and RBAC violations of a whole rendering."""
    problems: list[str] = []
    for obj in objects:
        problems += schema_violations(obj)
        problems += rbac_violations(obj)
        spec = pod_spec(obj)
        if spec is not None:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            problems += [f"{name}: {p}" for p in restricted_violations(spec)]
    return problems
