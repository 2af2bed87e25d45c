"""The checkers the packaging tests rely on find what they claim to find.

Covers: a restricted-compliant pod spec passes; privileged, root, escalation, missing
capability drop, missing seccomp, hostPath, hostNetwork and hostPort are each reported;
RBAC wildcards, secrets access and escalation verbs are reported; an unknown field fails
strict schema validation; Prometheus Operator kinds are left to their own tests; a missing
tool fails (never skips) with the command that installs it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.packaging.checks import rbac_violations, restricted_violations, schema_violations
from tests.packaging.tools import tool

GOOD_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": "x",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}],
}


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    pod = copy.deepcopy(GOOD_POD)
    node: Any = pod
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return pod


def test_a_restricted_pod_spec_passes() -> None:
    assert restricted_violations(GOOD_POD) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["containers", 0, "securityContext", "privileged"], True, "privileged"),
        (["securityContext", "runAsNonRoot"], False, "runAsNonRoot"),
        (["securityContext", "runAsUser"], 0, "runAsUser is 0"),
        (["containers", 0, "securityContext", "allowPrivilegeEscalation"], True, "Escalation"),
        (["containers", 0, "securityContext", "capabilities"], {"drop": []}, "drop ALL"),
        (["securityContext", "seccompProfile"], {"type": "Unconfined"}, "seccompProfile"),
        (["volumes"], [{"name": "h", "hostPath": {"path": "/"}}], "hostPath"),
        (["hostNetwork"], True, "hostNetwork"),
        (["containers", 0, "ports"], [{"containerPort": 80, "hostPort": 80}], "hostPort"),
    ],
)
def test_each_restricted_violation_is_reported(
    path: list[str | int], value: Any, expected: str
) -> None:
    problems = restricted_violations(_with(path, value))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, "wildcard"),
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, "wildcard"),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, "wildcard"),
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}, "secrets"),
        (
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]},
            "bind",
        ),
    ],
)
def test_each_rbac_violation_is_reported(rule: dict[str, Any], expected: str) -> None:
    role = {"kind": "Role", "metadata": {"name": "r"}, "rules": [rule]}
    problems = rbac_violations(role)
    assert any(expected in p for p in problems), problems


def test_an_unknown_field_fails_strict_schema_validation() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}], "bogus": True},
    }
    problems = schema_violations(service)
    assert problems
    assert "bogus" in problems[0]


def test_prometheus_operator_kinds_are_not_schema_checked_here() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {}}
    assert schema_violations(monitor) == []


def test_a_missing_tool_fails_with_the_command_that_installs_it() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/install-tools"):
        tool("lrsweep-no-such-tool")
