"""Sweeps that ask for more GPUs at once than the cluster has.

Covers: with one GPU and three trials at a time, a sweep whose trials pause at rungs parks
the waiting ones (their pods deleted, a TrialParked event) so the queued ones can run,
relaunches them when promoted, and ends with the winner `lrsweep run` picks, never waiting
out a rung's gate timeout; with checkpoints, a relaunched trial goes on from its rung.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Operator, apply, wait_phase
from tests.e2e.commands import ROOT
from tests.e2e.conftest import LocalRun
from tests.e2e.test_operator import events_of, local_winner, needs_local_kubelet, toy_sweep
from tests.harness.pytest_plugin import KubeCluster
from tests.harness.threaded import ThreadedHarness

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

RATES = [0.01, 0.05, 0.1, 0.2, 0.5]
MULTI_GPU = ROOT / "manifests" / "examples" / "multi-gpu.yaml"


def gpu_sweep(name: str, **env: str) -> dict[str, Any]:
    doc = toy_sweep(name, {"strategy": "asha", "values": RATES}, env)
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    return doc


def succeeded(
    cluster: KubeCluster, namespace: str, doc: dict[str, Any], operator: Operator
) -> dict[str, Any]:
    """Apply the sweep and wait for it to end; it must have Succeeded."""
    apply(cluster, namespace, doc)
    sweep = wait_phase(cluster, namespace, doc["metadata"]["name"], ("Succeeded", "Failed"), 240)
    assert sweep["status"]["phase"] == "Succeeded", operator.log()[-3000:]
    return sweep


@pytest.fixture
def one_gpu(harness: ThreadedHarness) -> ThreadedHarness:
    harness.set_node_capacity(**{"nvidia.com/gpu": "1"})
    return harness  # the fixture gives the Node its capacity back


@pytest.fixture
def patient_operator(
    kube_cluster: KubeCluster, kube_namespace: str, crd: str, tmp_path: Path
) -> Iterator[Operator]:
    """An operator whose trials wait up to 10 minutes at a rung: a sweep that waits for a
    gate timeout does not end within these tests' limits."""
    op = Operator(
        kube_cluster,
        kube_namespace,
        tmp_path / "operator.log",
        settings={"LRSWEEP_GATE_TIMEOUT": "600"},
    )
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.log(), op.log()[-5000:]


@pytest.fixture
def four_gpus(harness: ThreadedHarness) -> ThreadedHarness:
    harness.set_node_capacity(**{"nvidia.com/gpu": "4"})
    return harness


def test_the_multi_gpu_example_as_written_picks_its_local_winner_on_four_gpus(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    four_gpus: ThreadedHarness,
    patient_operator: Operator,
    local_multi_gpu: LocalRun,
) -> None:
    """Two GPUs a trial, four trials at once, four GPUs: trials run two by two, parked at
    rungs while others train; each pod runs torchrun, two processes."""
    needs_local_kubelet(kube_cluster)
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(MULTI_GPU))
    sweep = wait_phase(kube_cluster, kube_namespace, "multi-gpu", ("Succeeded", "Failed"), 400)
    assert sweep["status"]["phase"] == "Succeeded", patient_operator.log()[-3000:]
    assert sweep["status"]["bestLearningRate"] == local_multi_gpu.result()["bestLearningRate"]


def test_one_gpu_for_three_trials_parks_waiting_trials_and_picks_the_local_winner(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    one_gpu: ThreadedHarness,
    patient_operator: Operator,
    tmp_path: Path,
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = gpu_sweep("scarce")
    sweep = succeeded(kube_cluster, kube_namespace, doc, patient_operator)
    reasons = [e["reason"] for e in events_of(kube_cluster, kube_namespace, "scarce")]
    assert "TrialParked" in reasons
    assert sweep["status"]["bestLearningRate"] == local_winner(doc, tmp_path)


def test_a_parked_trial_with_checkpoints_goes_on_from_its_rung(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    one_gpu: ThreadedHarness,
    patient_operator: Operator,
    tmp_path: Path,
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = gpu_sweep("scarce-ckpt", TOY_CHECKPOINT="1")
    doc["spec"]["trial"]["checkpointDir"] = str(tmp_path / "checkpoints")
    sweep = succeeded(kube_cluster, kube_namespace, doc, patient_operator)
    resumed = {tid: t for tid, t in sweep["status"]["trials"].items() if t.get("resumes", 0) > 0}
    assert resumed, json.dumps(sweep["status"]["trials"], indent=1)
    # Went on from the rung's checkpoint: it did not train its first steps twice.
    assert all(t["startStep"] > 0 for t in resumed.values() if t["phase"] == "Succeeded"), resumed
