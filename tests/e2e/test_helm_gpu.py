"""A GPU cluster's whole life, as a user lives it: `helm install`, a sweep that wants more GPUs
at once than the cluster has, `helm uninstall`, then deleting the CRD.

Covers: on a test cluster of its own with one GPU, the chart's operator (a pod of the
harness's kubelet) runs the quickstart with one GPU per trial and parallelism 4 to Succeeded,
parking trials that wait at rungs, with the winner `lrsweep run` picks; `helm uninstall`
removes the operator and leaves what docs/deploy.md says it leaves (the CRD, the sweep, the
ended trials' pods, none running); deleting the CRD then deletes the sweep and its pods, and
nothing of the release or the sweep is left. manifests/examples/gpu-cnn.yaml, applied as
written to a four-GPU node of the test cluster, schedules its trials there (its node
selector and GPU limits fit) and, this machine having no CUDA, ends Failed with the
trainer's own reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import wait_phase
from tests.e2e.conftest import QUICKSTART, LocalRun
from tests.e2e.test_operator import events_of
from tests.harness.images import LRSWEEP_IMAGES
from tests.harness.kubelet import NodeConfig
from tests.harness.pytest_plugin import REPO, TEST_HARNESS, KubeCluster, wait_for
from tests.harness.threaded import ThreadedHarness

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

CHART = REPO / "charts" / "lrsweep"
NAMESPACE = "lrsweep-system"


def gpu_cluster(tmp_path: Path, gpus: int) -> Iterator[KubeCluster]:
    """A test cluster of its own (the release is cluster-wide), whose node has `gpus` GPUs
    (and no CUDA: this machine's)."""
    with ThreadedHarness(
        state_dir=tmp_path / "state", images=LRSWEEP_IMAGES, node=NodeConfig(gpus=gpus)
    ) as harness:
        yield KubeCluster(harness.kubeconfig_path, TEST_HARNESS, harness, tmp_path / "cache")


@pytest.fixture
def one_gpu_cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    yield from gpu_cluster(tmp_path, 1)


@pytest.fixture
def four_gpu_cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    yield from gpu_cluster(tmp_path, 4)


def names(cluster: KubeCluster, kind: str, *args: str) -> list[str]:
    out = cluster.kubectl("get", kind, *args, "-o", "name", check=False)
    return out.stdout.split() if out.returncode == 0 else []


def test_helm_install_gpu_sweep_with_fewer_gpus_than_parallelism_then_uninstall(
    one_gpu_cluster: KubeCluster, local_quickstart: LocalRun
) -> None:
    cluster = one_gpu_cluster
    cluster.helm(
        "install", "lrsweep", str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    doc: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert doc["spec"]["search"]["parallelism"] == 4
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(doc))
    sweep = wait_phase(cluster, NAMESPACE, "quickstart", ("Succeeded", "Failed"), 400)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"].get("message")
    assert sweep["status"]["bestLearningRate"] == local_quickstart.result()["bestLearningRate"]
    assert "TrialParked" in {e["reason"] for e in events_of(cluster, NAMESPACE, "quickstart")}

    cluster.helm("uninstall", "lrsweep", "-n", NAMESPACE, "--wait", "--timeout", "60s")
    wait_for(
        lambda: not running_pods(cluster),
        timeout=60,
        interval=0.5,
        message=lambda: f"the operator's pod to go: {running_pods(cluster)}",
    )
    assert names(cluster, "deployments", "-n", NAMESPACE) == []
    assert names(cluster, "crd") == [
        "customresourcedefinition.apiextensions.k8s.io/lrsweeps.lrsweep.dev"
    ]
    assert names(cluster, "lrs", "-n", NAMESPACE) == ["lrsweep.lrsweep.dev/quickstart"]
    assert names(cluster, "pods", "-n", NAMESPACE)  # the ended trials' pods, for their logs

    cluster.kubectl("delete", "crd", "lrsweeps.lrsweep.dev", "--timeout=60s")
    wait_for(
        lambda: not names(cluster, "pods", "-n", NAMESPACE),
        timeout=60,
        interval=0.5,
        message="the sweep's pods to go with it",
    )
    assert names(cluster, "crd") == []
    assert names(cluster, "clusterroles", "-l", "app.kubernetes.io/instance=lrsweep") == []


def running_pods(cluster: KubeCluster) -> list[str]:
    """Pods in the release's namespace that have not ended."""
    out = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout
    return [
        p["metadata"]["name"]
        for p in json.loads(out)["items"]
        if p["status"].get("phase") not in ("Succeeded", "Failed")
    ]


def test_the_gpu_example_as_written_schedules_on_gpu_nodes_and_says_when_cuda_is_missing(
    four_gpu_cluster: KubeCluster,
) -> None:
    cluster = four_gpu_cluster
    cluster.kubectl("create", "namespace", "ml")  # as the README does, before the install
    cluster.helm(
        "install", "lrsweep", str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--set", "operator.watchNamespaces={ml}", "--wait", "--timeout", "120s",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "examples" / "gpu-cnn.yaml"))
    sweep = wait_phase(cluster, "ml", "cnn-adam-lr", ("Succeeded", "Failed"), 300)
    status = sweep["status"]
    assert status["phase"] == "Failed"
    assert "--device cuda was asked for, but CUDA is not available" in status["message"]
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "ml", "-o", "json").stdout)["items"]
    assert pods
    assert all(p["spec"]["nodeName"] for p in pods)  # scheduled: selector and GPUs fit
