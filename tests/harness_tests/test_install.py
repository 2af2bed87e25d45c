"""A user's install paths, unchanged, on a test cluster of their own: `helm install` of
charts/lrsweep and `kubectl apply -k manifests/` end with the operator running as a pod of
the harness's kubelet, answering sweeps; `helm uninstall` (which deletes its release with a
protobuf `DeleteOptions` body) removes the release.

Each test starts its own harness: the install is cluster-wide (the CRD, a ClusterRole) and
its namespace fixed (`lrsweep-system`), so it must not meet other tests' objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.images import LRSWEEP_IMAGES
from tests.harness.pytest_plugin import REPO, TEST_HARNESS, KubeCluster, wait_for
from tests.harness.threaded import ThreadedHarness

CHART = REPO / "charts" / "lrsweep"
MANIFESTS = REPO / "manifests"
NAMESPACE = "lrsweep-system"
TIMEOUT = 120.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    with ThreadedHarness(state_dir=tmp_path / "state", images=LRSWEEP_IMAGES) as harness:
        yield KubeCluster(harness.kubeconfig_path, TEST_HARNESS, harness, tmp_path / "cache")


def _operator_pods(cluster: KubeCluster, selector: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json")
    pods: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return pods


def _assert_operator_answers_a_sweep(cluster: KubeCluster) -> None:
    """The operator pod reads and writes the API: a new sweep gets a status. Its trials'
    image has no entrypoint here, so no trial process runs."""
    sweep = yaml.safe_load((MANIFESTS / "examples" / "quickstart.yaml").read_text())
    sweep["spec"]["trial"]["template"]["spec"]["containers"][0]["image"] = "example.invalid/t:1"
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(sweep))

    def phase() -> str | None:
        got = cluster.kubectl("get", "lrs", "quickstart", "-n", NAMESPACE, "-o", "json")
        return (json.loads(got.stdout).get("status") or {}).get("phase")

    wait_for(phase, timeout=TIMEOUT, interval=0.5, message="the operator to reconcile a sweep")


def test_helm_install_runs_the_operator(cluster: KubeCluster) -> None:
    cluster.helm(
        "install", "lrsweep", str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", f"{TIMEOUT:.0f}s",
    )  # fmt: skip
    (pod,) = _operator_pods(cluster, "app.kubernetes.io/instance=lrsweep")
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    _assert_operator_answers_a_sweep(cluster)


def test_kustomize_install_runs_the_operator(cluster: KubeCluster) -> None:
    cluster.kubectl("apply", "-k", str(MANIFESTS))
    cluster.kubectl(
        "rollout", "status", "deployment/lrsweep-operator", "-n", NAMESPACE,
        f"--timeout={TIMEOUT:.0f}s", timeout=TIMEOUT + 10,
    )  # fmt: skip
    (pod,) = _operator_pods(cluster, "app.kubernetes.io/component=operator")
    assert pod["status"]["phase"] == "Running"
    _assert_operator_answers_a_sweep(cluster)


def test_helm_uninstall_removes_the_release(cluster: KubeCluster) -> None:
    cluster.helm("install", "lrsweep", str(CHART), "-n", NAMESPACE, "--create-namespace")
    cluster.helm("uninstall", "lrsweep", "-n", NAMESPACE, "--wait", "--timeout", "60s")
    assert cluster.helm("list", "-n", NAMESPACE, "-q").stdout.strip() == ""
    left = cluster.kubectl("get", "secrets,deployments", "-n", NAMESPACE, "-o", "name").stdout
    assert left.strip() == ""
