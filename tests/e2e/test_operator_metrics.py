"""The operator's own metrics follow the sweeps that exist.

Covers: a deleted sweep's series leave the operator's /metrics (its phase and best result),
so alerts on a failed or stalled sweep stop once it is gone.
"""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import Operator, apply, wait_phase
from tests.e2e.toy import toy_sweep_doc
from tests.harness.pytest_plugin import KubeCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def sweeps_in_metrics(operator: Operator) -> set[str]:
    """Sweeps with an `lrsweep_sweeps` series on the operator's /metrics."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["sweep"]
        for family in text_string_to_metric_families(text)
        if family.name == "lrsweep_sweeps"
        for sample in family.samples
    }


def test_a_deleted_sweep_leaves_the_operators_metrics(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    doc = toy_sweep_doc("gone", {"strategy": "grid", "values": [0.05]})
    doc["spec"]["trial"]["template"]["spec"]["containers"] = []  # Failed at once, no pods
    apply(kube_cluster, kube_namespace, doc)
    wait_phase(kube_cluster, kube_namespace, "gone", ("Failed",), 60)
    wait_for(
        lambda: "gone" in sweeps_in_metrics(operator), timeout=30, message="the sweep's series"
    )
    kube_cluster.kubectl("delete", "lrs", "gone", "-n", kube_namespace, "--wait=true")
    wait_for(
        lambda: "gone" not in sweeps_in_metrics(operator),
        timeout=30,
        message="the deleted sweep's series to go",
    )
