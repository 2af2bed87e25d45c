"""One reconcile of a sweep, against an in-memory cluster.

Covers: an invalid spec ends Failed with an InvalidSpec condition naming the field, and a
second reconcile writes nothing; a new sweep launches its first trial pods and summarises
its status (Running, startTime, Ready=False TrialsRunning, queued trials); a pod the cluster
already has counts as launched; a pod the API refuses becomes a failed attempt with the
API's message; an unschedulable pod shows in the TrialsSchedulable condition; a finished
sweep is left alone; nothing learned, nothing written; the status patch deletes what the
new status no longer has (a relaunched trial's rungs), leaving kopf's own keys alone.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubernetes import client

from lrsweep.api import parse_status
from lrsweep.runtime.kube import Cluster, ReconcileResult, reconcile, status_patch
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry
from tests.harness.patching import merge_patch

SPEC: dict[str, Any] = {
    "search": {"strategy": "grid", "values": [0.01, 0.1], "parallelism": 1},
    "budget": {"steps": 100, "evalEvery": 10, "minSteps": 10},
    "trial": {"template": {"spec": {"containers": [{"name": "t", "image": "trainer"}]}}},
}


def body(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> Any:
    return {
        "apiVersion": "lrsweep.dev/v1alpha1",
        "kind": "LRSweep",
        "metadata": {"name": "s", "namespace": "ml", "uid": "u", "generation": 1},
        "spec": copy.deepcopy(spec if spec is not None else SPEC),
        "status": status or {},
    }


class MemoryCluster(Cluster):
    """The API calls of a reconcile, answered from memory."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__(client.CoreV1Api(client.ApiClient()), Telemetry())
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.refuse = refuse

    async def list_pods(self, namespace: str, sweep: str) -> list[dict[str, Any]]:
        return list(self.pods.values())

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> str | None:
        if self.refuse is not None:
            return self.refuse
        self.created.append(pod["metadata"]["name"])
        self.pods.setdefault(pod["metadata"]["name"], pod)
        return None

    async def delete_pod(self, namespace: str, name: str, grace: int) -> None:
        self.pods.pop(name, None)

    async def scrape(self, url: str, timeout: float) -> str | None:
        return None


def run(cluster: MemoryCluster, sweep: Any) -> ReconcileResult:
    return asyncio.run(reconcile(cluster, OperatorSettings(), sweep, "2026-01-01T00:00:00Z"))


def test_an_invalid_spec_fails_with_a_condition_naming_the_field() -> None:
    bad = {**SPEC, "search": {"min": 1.0, "max": 0.1}}
    result = run(MemoryCluster(), body(bad))
    assert result.status is not None
    assert result.status["phase"] == "Failed"
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert failed["message"].startswith("spec.search:")
    assert failed["observedGeneration"] == 1
    again = run(MemoryCluster(), body(bad, result.status))
    assert again.status is None


def test_a_new_sweep_launches_trials_and_summarises_its_status() -> None:
    cluster = MemoryCluster()
    result = run(cluster, body())
    assert cluster.created == ["s-t000-1"]  # parallelism 1
    status = result.status
    assert status is not None
    assert status["phase"] == "Running"
    assert status["startTime"] == "2026-01-01T00:00:00Z"
    assert status["trialCount"] == 2
    assert status["trials"]["t000"]["queued"] is False
    assert status["trials"]["t001"]["queued"] is True
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TrialsRunning")
    assert ("Normal", "TrialStarted", "t000 attempt 1: rate 0.01") in result.events


def test_a_pod_the_cluster_already_has_counts_as_launched() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    restarted = run(cluster, body(status={**(first.status or {}), "trials": {}}))
    assert restarted.status is not None
    assert restarted.status["trials"]["t000"]["attempts"] == 1


def test_a_pod_the_api_refuses_is_a_failed_attempt_with_the_apis_message() -> None:
    cluster = MemoryCluster(refuse='Pod "s-t000-1" is invalid: spec.containers[0].image: Required')
    result = run(cluster, body())
    assert result.status is not None
    trial = result.status["trials"]["t000"]
    assert trial["queued"] is True
    assert "the API server refused the trial pod" in trial["reason"]
    assert "spec.containers[0].image: Required" in trial["reason"]


def test_an_unschedulable_pod_shows_in_a_condition() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    pod = cluster.pods["s-t000-1"]
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            }
        ],
    }
    result = run(cluster, body(status=first.status))
    assert result.status is not None
    condition = next(c for c in result.status["conditions"] if c["type"] == "TrialsSchedulable")
    assert condition["status"] == "False"
    assert "t000: 0/1 nodes are available" in condition["message"]


def test_a_finished_sweep_is_left_alone() -> None:
    cluster = MemoryCluster()
    result = run(cluster, body(status={"phase": "Succeeded", "bestLearningRate": 0.01}))
    assert result.status is None
    assert cluster.created == []


def test_nothing_learned_nothing_written() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.pods["s-t000-1"]["status"] = {"phase": "Pending"}
    second = run(cluster, body(status=first.status))
    third = run(cluster, body(status=second.status))
    assert third.status is None


def test_the_status_patch_deletes_a_relaunched_trials_rungs() -> None:
    # kopf writes the status as a JSON merge patch: an empty map there deletes nothing.
    cluster = MemoryCluster()
    first = run(cluster, body())
    assert first.status is not None
    stored = copy.deepcopy(first.status)
    stored["trials"]["t000"]["rungs"] = {"10": 0.5}  # its first attempt reached a rung
    stored["kopf"] = {"progress": {}}  # kopf's own bookkeeping
    cluster.pods.clear()  # then its pod was lost: relaunched, judged afresh
    result = run(cluster, body(status=stored))
    assert result.status is not None
    assert result.status["trials"]["t000"]["rungs"] == {}
    written = merge_patch(stored, status_patch(stored, result.status))
    assert written["trials"]["t000"]["rungs"] == {}
    assert written["kopf"] == {"progress": {}}
    # Everything else as the reconcile decided (a None there is a key deleted here).
    assert parse_status(written).model_dump(mode="json") == result.status
