"""`kubectl explain` on the installed LRSweep CRD.

Covers: a section of the spec (search) and the status's conditions print their own and their
fields' descriptions, not `<no description>`.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from lrsweep.crd import build_crd
from tests.harness.pytest_plugin import KubeCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def _explain(cluster: KubeCluster, field: str) -> str:
    def probe() -> subprocess.CompletedProcess[str] | None:
        done = cluster.kubectl("explain", field, check=False)
        return done if done.returncode == 0 else None

    return wait_for(probe, message=f"kubectl explain {field}").stdout


def _schema(*path: str) -> dict[str, Any]:
    node: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for name in path:
        node = node["properties"][name]
    return node


@pytest.mark.parametrize(
    ("field", "path", "child"),
    [
        ("lrsweep.spec.search", ("spec", "search"), "min"),
        ("lrsweep.status.conditions", ("status", "conditions"), "lastTransitionTime"),
    ],
)
def test_kubectl_explain_prints_the_descriptions_of_a_section_and_its_fields(
    kube_cluster: KubeCluster, crd: str, field: str, path: tuple[str, ...], child: str
) -> None:
    text = " ".join(_explain(kube_cluster, field).split())
    assert "<no description>" not in text
    section = _schema(*path)
    assert section["description"].split(".")[0] in text
    fields = section.get("items", section)["properties"]
    assert fields[child]["description"].split(".")[0] in text
