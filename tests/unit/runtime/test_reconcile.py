"""One reconcile of a sweep, against an in-memory cluster.

Covers: an invalid spec ends Failed with an InvalidSpec condition naming the field, and a
second reconcile writes nothing; a new sweep launches its first trial pods and summarises
its status (Running, startTime, Ready=False TrialsRunning, queued trials); a pod the cluster
already has counts as launched; a sweep whose stored status cannot be read starts over
rather than raising; a pod the API refuses becomes a failed attempt with the
API's message, except over a namespace quota, where the trial waits queued; a sweep whose
only trial fails ends Failed, with Failed=True and Ready=False NoTrialCompleted and its
completion time, and says why in a SweepFailed warning event; an unschedulable pod shows in
the TrialsSchedulable condition, and so does a container the kubelet cannot start
(ImagePullBackOff), which fails its attempt after the grace; a finished sweep is left alone
(not even read afresh), but for deleting its pods still running, listed once per operator
process; nothing learned, nothing written; the
status patch deletes what the new status no longer has (a relaunched trial's rungs), leaving
kopf's own keys alone. Stopping: a stopped trial's pod is deleted only once a stored status
records the stop, so a reconcile that fails after deciding it neither relaunches nor fails
the trial; a reconcile handed an older body than the API stores works from the stored
status, and one of a sweep deleted meanwhile does nothing; the pod of an attempt the status
has moved past is deleted. With checkpoints, a decided trial's pod is told to keep none
before it is deleted (not one of an attempt moved past, nor without a checkpoint directory);
a pod whose trainer does not answer that is asked again by the next reconciles before it is
deleted anyway (a finished sweep's too), and a discard nobody answers is not taken as done.
An infinite objective value is written as the largest float (JSON has no infinity) and reads
back to the same status. The HTTP session is closed only once a reconcile under way has
ended. IPv6 pod addresses are bracketed in metrics URLs; metrics another trial serves at a
pod's address are not read as its own; a failed promotion is counted under the sweep's
namespace, as a POST failure (not a scrape failure); a sweep's last progress is exported.
A running trial's progress alone (its step, verdict and reason) is written at most once per
progress interval, every change with an interval of 0; anything the sweep decides is
written at once. A reconcile's events are posted one per kind, in order, their messages
joined up to the length of one Event's.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lrsweep.api import LRSweepStatus, parse_status
from lrsweep.engine.strategies import Best
from lrsweep.engine.sweep import Decision
from lrsweep.runtime.cluster import Cluster
from lrsweep.runtime.kube import (
    DISCARD_TRIES,
    ReconcileResult,
    combined,
    progress_only,
    reconcile,
    status_patch,
    sweep_status,
)
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
        self.deleted: list[str] = []
        self.lists = 0
        self.refuse = refuse
        self.create_error: ApiException | None = None  # raised by create_pod when set
        self.metrics: dict[str, str] = {}  # a pod IP's /history text
        self.scraped: list[str] = []
        self.discarded: list[str] = []  # URLs told to keep no checkpoint
        self.unanswered: set[str] = set()  # URLs whose trainer does not answer a discard
        self.sweep: Any = None  # the LRSweep as stored (None: deleted)
        self.reads = 0

    async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        stored: dict[str, Any] | None = copy.deepcopy(self.sweep)
        return stored

    async def list_pods(self, namespace: str, sweep: str) -> list[dict[str, Any]]:
        self.lists += 1
        return copy.deepcopy(list(self.pods.values()))

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> str | None:
        if self.create_error is not None:
            raise self.create_error
        if self.refuse is not None:
            return self.refuse
        self.created.append(pod["metadata"]["name"])
        self.pods.setdefault(pod["metadata"]["name"], pod)
        return None

    async def delete_pod(self, namespace: str, name: str, grace: int) -> None:
        self.deleted.append(name)
        self.pods.pop(name, None)

    async def scrape(self, url: str, timeout: float) -> str | None:
        self.scraped.append(url)
        return self.metrics.get(urlsplit(url).hostname or "")

    async def promote(self, namespace: str, url: str, timeout: float) -> None:
        pass

    async def discard(self, namespace: str, url: str, timeout: float) -> bool:
        self.discarded.append(url)
        return url not in self.unanswered

    def run_pod(self, name: str, ip: str, evaluations: dict[int, dict[str, str]]) -> None:
        """The pod runs at `ip` and serves these evaluations ({step: {metric: value}})."""
        self.pods[name]["status"] = {"phase": "Running", "podIP": ip}
        trial = self.pods[name]["metadata"]["labels"]["lrsweep.dev/trial"]
        self.metrics[ip] = "".join(
            f'lrsweep_trial_eval{{metric="{metric}",step="{step}",sweep="s",trial="{trial}"}} '
            f"{value}\n"
            for step, values in evaluations.items()
            for metric, value in values.items()
        )


def run(
    cluster: MemoryCluster,
    sweep: Any,
    stored: Any = "as handed",
    now: str = "2026-01-01T00:00:00Z",
    settings: OperatorSettings | None = None,
) -> ReconcileResult:
    """One reconcile handed `sweep` (kopf's copy), the API storing `stored` (None: deleted)."""
    cluster.sweep = sweep if stored == "as handed" else stored
    return asyncio.run(reconcile(cluster, settings or OperatorSettings(), sweep, now))


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


def test_a_sweep_whose_stored_status_is_unreadable_starts_over_without_raising() -> None:
    cluster = MemoryCluster()
    result = run(cluster, body(status={"phase": "Running", "trials": "not a mapping"}))
    assert cluster.created == ["s-t000-1"]
    assert result.status is not None
    assert result.status["phase"] == "Running"


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
    assert "the trial pod was refused" in trial["reason"]
    assert "spec.containers[0].image: Required" in trial["reason"]


def _no_trial_completed() -> ReconcileResult:
    """The reconcile that ends a sweep whose only trial's pod is refused (no retries)."""
    one_rate = {
        **SPEC,
        "search": {"strategy": "grid", "values": [0.01], "parallelism": 1},
        "trial": {**SPEC["trial"], "maxRetries": 0},
    }
    cluster = MemoryCluster(refuse='Pod "s-t000-1" is invalid: spec.containers[0].image')
    first = run(cluster, body(one_rate))
    return run(cluster, body(one_rate, first.status))


def test_a_sweep_with_no_trial_completed_ends_failed_and_not_ready() -> None:
    ended = _no_trial_completed()
    assert ended.status is not None
    assert ended.status["phase"] == "Failed"
    assert ended.status["completionTime"] == "2026-01-01T00:00:00Z"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in ended.status["conditions"]}
    assert conditions == {
        "Failed": ("True", "NoTrialCompleted"),
        "Ready": ("False", "NoTrialCompleted"),
    }


def test_a_sweep_that_ends_failed_emits_a_warning_with_its_message() -> None:
    ended = _no_trial_completed()
    assert ended.status is not None
    assert ("Warning", "SweepFailed", ended.status["message"]) in ended.events


def _succeeded(caveat: str) -> dict[str, tuple[str, str, str]]:
    best = Best(0.01, 0.1, "t000")
    decision = Decision(
        (),
        (),
        (),
        (),
        done=True,
        best=best,
        range_result=None,
        message="best rate 0.01",
        caveat=caveat,
        at_edge=caveat,
    )
    status = sweep_status(decision, LRSweepStatus(), [], [], "2026-01-01T00:00:00Z", 1)
    return {c.type: (c.status, c.reason, c.message) for c in status.conditions}


def test_a_winner_inside_the_rates_tried_is_bracketed() -> None:
    assert _succeeded("")["Bracketed"] == ("True", "BestRateInside", "")


def test_a_winner_at_the_edge_of_the_rates_tried_is_not_bracketed_and_says_why() -> None:
    why = "the best rate is the lowest tried, so a better one may lie beyond it"
    assert _succeeded(why)["Bracketed"] == ("False", "BestRateAtEdge", why)


QUOTA = (
    'pods "s-t000-1" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1, '
    "used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2"
)


def test_a_pod_over_the_namespace_quota_waits_queued_without_using_an_attempt() -> None:
    cluster = MemoryCluster(refuse=QUOTA)
    status: dict[str, Any] = {}
    for _ in range(4):  # more ticks than maxRetries allows failed attempts
        status = run(cluster, body(status=status)).status or status
    assert status["phase"] == "Running"
    trial = status["trials"]["t000"]
    assert (trial["queued"], trial["attempts"]) == (True, 0)
    assert trial["reason"].startswith("waiting for the namespace quota: ")
    condition = next(c for c in status["conditions"] if c["type"] == "TrialsSchedulable")
    assert condition["status"] == "False"
    assert "t000: " + QUOTA in condition["message"]
    cluster.refuse = None  # another sweep's pods ended
    launched = run(cluster, body(status=status)).status
    assert launched is not None
    assert launched["trials"]["t000"]["attempts"] == 1
    assert cluster.created == ["s-t000-1"]


NO_GPU: dict[str, Any] = {
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


def test_an_unschedulable_pod_shows_in_a_condition() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.pods["s-t000-1"]["status"] = copy.deepcopy(NO_GPU)
    result = run(cluster, body(status=first.status))
    assert result.status is not None
    condition = next(c for c in result.status["conditions"] if c["type"] == "TrialsSchedulable")
    assert condition["status"] == "False"
    assert "t000: 0/1 nodes are available" in condition["message"]


def test_a_running_sweep_with_trials_that_cannot_start_says_why_in_ready_and_message() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.pods["s-t000-1"]["status"] = copy.deepcopy(NO_GPU)
    status = run(cluster, body(status=first.status)).status
    assert status is not None
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Unschedulable")
    assert status["message"].startswith(
        "1 trial(s) cannot start (t000: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.)"
    )


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


THREE_RATES: dict[str, Any] = {
    **SPEC,
    "search": {"strategy": "grid", "values": [0.01, 0.1, 1.0], "parallelism": 2},
}
DIVERGING = {0: {"val_loss": "1.0"}, 10: {"val_loss": "NaN"}}


def test_a_stop_survives_a_reconcile_that_fails_after_deciding_it() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body(THREE_RATES))
    cluster.run_pod("s-t000-1", "10.0.0.1", DIVERGING)
    cluster.run_pod("s-t001-1", "10.0.0.2", {})
    cluster.create_error = ApiException(status=500, reason="Internal Server Error")
    with pytest.raises(ApiException):
        run(cluster, body(THREE_RATES, first.status))  # stops t000, cannot launch t002
    cluster.create_error = None
    retried = run(cluster, body(THREE_RATES, first.status))  # its status was never written
    assert retried.status is not None
    t000 = retried.status["trials"]["t000"]
    assert (t000["phase"], t000["attempts"]) == ("Diverged", 1)
    assert "s-t000-2" not in cluster.created


def _deciding_t000(cluster: MemoryCluster, spec: dict[str, Any]) -> tuple[Any, ReconcileResult]:
    """The first reconcile's status, and the reconcile deciding t000 (diverged) from it, t000's
    pod running at 10.0.0.1 and t001's at 10.0.0.2."""
    first = run(cluster, body(spec))
    cluster.run_pod("s-t000-1", "10.0.0.1", DIVERGING)
    cluster.run_pod("s-t001-1", "10.0.0.2", {})
    stopping = run(cluster, body(spec, first.status))
    assert stopping.status is not None
    return first.status, stopping


def test_a_stopped_trials_pod_is_deleted_once_the_status_records_the_stop() -> None:
    cluster = MemoryCluster()
    _, stopping = _deciding_t000(cluster, THREE_RATES)
    assert stopping.status is not None
    assert stopping.status["trials"]["t000"]["phase"] == "Diverged"
    assert ("Normal", "TrialStopped") in {e[:2] for e in stopping.events}
    assert cluster.deleted == []  # not before the write recording why
    run(cluster, body(THREE_RATES, stopping.status))
    assert cluster.deleted == ["s-t000-1"]


def test_a_reconcile_handed_an_older_body_works_from_the_stored_status() -> None:
    cluster = MemoryCluster()
    older, stopping = _deciding_t000(cluster, THREE_RATES)
    # kopf's watch has not brought the write that decided t000 yet.
    result = run(cluster, body(THREE_RATES, older), stored=body(THREE_RATES, stopping.status))
    assert cluster.deleted == ["s-t000-1"]  # what the stored status decided
    assert result.stored == stopping.status  # the status patch is computed against it


def test_the_metrics_of_another_trial_at_a_pods_address_are_not_taken_for_its_own() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body(THREE_RATES))
    cluster.run_pod("s-t000-1", "10.0.0.1", DIVERGING)
    served = cluster.metrics["10.0.0.1"]
    cluster.metrics["10.0.0.1"] = served.replace('trial="t000"', 'trial="t007"')
    result = run(cluster, body(THREE_RATES, first.status))
    assert result.status is not None
    assert result.status["trials"]["t000"]["phase"] == "Running"  # t007 diverged, not t000


def test_a_sweep_deleted_since_kopf_saw_it_is_left_alone() -> None:
    cluster = MemoryCluster()
    result = run(cluster, body(), stored=None)
    assert (result.status, cluster.created, cluster.lists) == (None, [], 0)


KEEPING = {**THREE_RATES, "trial": {**THREE_RATES["trial"], "checkpointDir": "/ckpt"}}


@pytest.mark.parametrize(
    ("spec", "discarded"),
    [(KEEPING, ["http://10.0.0.1:9090/discard"]), (THREE_RATES, [])],
    ids=["checkpoints", "no-checkpoint-directory"],
)
def test_a_decided_trials_pod_is_told_to_keep_no_checkpoint_before_it_is_deleted(
    spec: dict[str, Any], discarded: list[str]
) -> None:
    cluster = MemoryCluster()
    _, stopping = _deciding_t000(cluster, spec)
    run(cluster, body(spec, stopping.status))
    assert cluster.deleted == ["s-t000-1"]
    assert cluster.discarded == discarded


def test_a_pod_that_does_not_answer_the_discard_is_asked_again_before_it_is_deleted() -> None:
    cluster = MemoryCluster()
    stopping = _deciding_t000(cluster, KEEPING)[1].status
    cluster.unanswered = {"http://10.0.0.1:9090/discard"}
    run(cluster, body(KEEPING, stopping))
    assert cluster.deleted == []
    cluster.unanswered = set()
    run(cluster, body(KEEPING, stopping))
    assert cluster.deleted == ["s-t000-1"]
    assert cluster.discarded == ["http://10.0.0.1:9090/discard"] * 2


def test_a_pod_that_never_answers_the_discard_is_deleted_after_the_last_try() -> None:
    cluster = MemoryCluster()
    stopping = _deciding_t000(cluster, KEEPING)[1].status
    cluster.unanswered = {"http://10.0.0.1:9090/discard"}
    for _ in range(DISCARD_TRIES - 1):
        run(cluster, body(KEEPING, stopping))
    assert cluster.deleted == []
    run(cluster, body(KEEPING, stopping))
    assert cluster.deleted == ["s-t000-1"]
    assert len(cluster.discarded) == DISCARD_TRIES


def test_a_finished_sweep_is_tidied_again_while_a_pod_waits_for_its_discard() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body(KEEPING))
    cluster.run_pod("s-t000-1", "10.0.0.1", {})
    finished = body(KEEPING, {**(first.status or {}), "phase": "Succeeded"})
    cluster.unanswered = {"http://10.0.0.1:9090/discard"}
    run(cluster, finished)
    assert cluster.deleted == ["s-t001-1"]  # not serving: nothing to discard
    cluster.unanswered = set()
    run(cluster, finished)
    run(cluster, finished)
    assert cluster.deleted == ["s-t001-1", "s-t000-1"]
    assert cluster.lists == 3  # the first reconcile's, and two of the finished sweep


def test_the_pod_of_an_attempt_moved_past_keeps_the_checkpoint_its_next_attempt_needs() -> None:
    keeping = {**SPEC, "trial": {**SPEC["trial"], "checkpointDir": "/ckpt"}}
    cluster = MemoryCluster()
    first = run(cluster, body(keeping))
    _stuck(cluster, "s-t000-1", "CreateContainerConfigError", 'secret "x" not found', "")
    cluster.pods["s-t000-1"]["status"]["podIP"] = "10.0.0.1"
    second = run(cluster, body(keeping, first.status))  # fails attempt 1, launches attempt 2
    run(cluster, body(keeping, second.status))
    assert cluster.deleted == ["s-t000-1"]
    assert cluster.discarded == []


def test_a_finished_sweeps_pods_still_running_are_deleted() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.run_pod("s-t000-1", "10.0.0.1", {})
    result = run(cluster, body(status={**(first.status or {}), "phase": "Failed"}))
    assert result.status is None
    assert cluster.deleted == ["s-t000-1"]


def test_a_finished_sweeps_pods_are_listed_once_per_operator_process() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    finished = body(status={**(first.status or {}), "phase": "Succeeded"})
    run(cluster, finished)
    run(cluster, finished)
    assert cluster.lists == 2  # the first reconcile's, and one of the finished sweep
    assert cluster.reads == 1  # the first reconcile's: a finished sweep no longer changes


def _stuck(cluster: MemoryCluster, name: str, reason: str, message: str, scheduled: str) -> None:
    cluster.pods[name]["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}],
        "containerStatuses": [
            {"name": "t", "state": {"waiting": {"reason": reason, "message": message}}}
        ],
    }


def test_a_container_that_cannot_start_shows_in_a_condition() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    pulling = 'Back-off pulling image "trainr:1"'
    _stuck(cluster, "s-t000-1", "ImagePullBackOff", pulling, "2025-12-31T23:59:00Z")
    result = run(cluster, body(status=first.status))
    assert result.status is not None
    condition = next(c for c in result.status["conditions"] if c["type"] == "TrialsSchedulable")
    assert (condition["status"], condition["reason"]) == ("False", "ContainersCannotStart")
    assert condition["message"] == f"t000: ImagePullBackOff: {pulling}"
    assert result.status["trials"]["t000"]["phase"] == "Pending"
    assert cluster.created == ["s-t000-1"]


def test_an_image_pull_failing_past_the_grace_fails_the_attempt() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    _stuck(cluster, "s-t000-1", "ErrImagePull", "i/o timeout", "2025-12-31T23:50:00Z")
    result = run(cluster, body(status=first.status))
    assert result.status is not None
    condition = next(c for c in result.status["conditions"] if c["type"] == "TrialsSchedulable")
    assert condition["message"] == "t000: ErrImagePull: i/o timeout (for over 300 s)"
    assert cluster.created == ["s-t000-1", "s-t000-2"]  # attempt 1 failed, 2 launched


def test_the_pod_of_an_attempt_the_status_has_moved_past_is_deleted() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    _stuck(cluster, "s-t000-1", "CreateContainerConfigError", 'secret "x" not found', "")
    second = run(cluster, body(status=first.status))  # fails attempt 1, launches attempt 2
    assert cluster.deleted == []
    run(cluster, body(status=second.status))
    assert cluster.deleted == ["s-t000-1"]


INFINITE: dict[str, Any] = {**SPEC, "objective": {"metric": "score", "goal": "maximize"}}
REPORTS_INF = {0: {"score": "0.1"}, 50: {"score": "0.2"}, 100: {"score": "+Inf"}}


def test_an_infinite_objective_value_is_written_as_json() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body(INFINITE))
    cluster.run_pod("s-t000-1", "10.0.0.1", REPORTS_INF)
    result = run(cluster, body(INFINITE, first.status))
    assert result.status is not None
    json.dumps(result.status, allow_nan=False)  # kopf would write Infinity: not JSON
    assert result.status["trials"]["t000"]["rungs"] == {"100": sys.float_info.max}


def test_an_infinite_objective_value_reads_back_to_the_same_status() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body(INFINITE))
    cluster.run_pod("s-t000-1", "10.0.0.1", REPORTS_INF)
    second = run(cluster, body(INFINITE, first.status))
    stored = json.loads(json.dumps(second.status))  # as the API server returns it
    assert run(cluster, body(INFINITE, stored)).status is None


def test_a_pod_with_an_ipv6_address_is_scraped_at_a_bracketed_url() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.run_pod("s-t000-1", "fd00::5", {})
    run(cluster, body(status=first.status))
    assert cluster.scraped == ["http://[fd00::5]:9090/history"]


def _refusing_url(path: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    return f"http://127.0.0.1:{port}{path}"


def test_closing_waits_for_a_reconcile_under_way_before_closing_the_http_session() -> None:
    # kopf abandons a timer still running when the operator stops, then runs the cleanup.
    class Slow(MemoryCluster):
        """Its reads of the sweep wait for `go_on`."""

        def __init__(self) -> None:
            super().__init__()
            self.go_on = asyncio.Event()

        async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
            await self.go_on.wait()
            return await super().read_sweep(namespace, name)

    async def scenario() -> None:
        cluster = Slow()
        cluster.sweep = body()
        cluster.http = session = aiohttp.ClientSession()
        running = asyncio.create_task(
            reconcile(cluster, OperatorSettings(), body(), "2026-01-01T00:00:00Z")
        )
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(cluster.close())
        await asyncio.sleep(0.2)
        closed_under_reconcile = session.closed
        cluster.go_on.set()
        await running
        await closing
        assert not closed_under_reconcile
        assert session.closed

    asyncio.run(scenario())


def test_a_discard_nobody_answers_is_not_taken_as_done() -> None:
    cluster = Cluster(client.CoreV1Api(client.ApiClient()), Telemetry())

    async def discard() -> bool:
        try:
            return await cluster.discard("ml", _refusing_url("/discard"), 2.0)
        finally:
            await cluster.close()

    assert asyncio.run(discard()) is False


def test_a_failed_promotion_is_counted_as_a_post_failure_not_a_scrape_failure() -> None:
    cluster = Cluster(client.CoreV1Api(client.ApiClient()), Telemetry())

    async def promote() -> None:
        try:
            await cluster.promote("ml", _refusing_url("/continue?step=10"), 2.0)
        finally:
            await cluster.close()

    asyncio.run(promote())
    registry = cluster.telemetry.registry
    posts = registry.get_sample_value("lrsweep_trainer_post_failures_total", {"namespace": "ml"})
    scrapes = registry.get_sample_value("lrsweep_scrape_failures_total", {"namespace": "ml"})
    assert (posts, scrapes) == (1.0, None)


GATED = {**SPEC, "search": {"strategy": "asha", "values": [0.01, 0.1, 0.5], "parallelism": 3}}


def _one_at_its_first_rung(
    pending: dict[str, Any], leaving: dict[str, Any] | None = None
) -> tuple[MemoryCluster, ReconcileResult]:
    """A gated sweep whose t000 waits at its first rung (step 10) while t001 is `pending`,
    and t002 too (or `leaving`, when given): the reconcile that sees it."""
    cluster = MemoryCluster()
    first = run(cluster, body(GATED))
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 10: {"val_loss": "1"}})
    cluster.pods["s-t001-1"]["status"] = copy.deepcopy(pending)
    if leaving is None:
        cluster.pods["s-t002-1"]["status"] = copy.deepcopy(pending)
    else:
        cluster.pods["s-t002-1"].update(copy.deepcopy(leaving))
    return cluster, run(cluster, body(GATED, first.status))


def test_a_trial_waiting_at_a_rung_is_parked_for_trials_the_cluster_has_no_gpu_for() -> None:
    _, result = _one_at_its_first_rung(NO_GPU)
    assert result.status is not None
    assert result.status["trials"]["t000"]["parkedAt"] == 10
    assert ("Normal", "TrialParked") in {(kind, reason) for kind, reason, _ in result.events}


def test_a_parked_trials_pod_is_deleted_next_and_not_read_as_lost() -> None:
    cluster, parked = _one_at_its_first_rung(NO_GPU)
    after = run(cluster, body(GATED, parked.status))
    assert "s-t000-1" in cluster.deleted
    status = after.status or parked.status
    assert status is not None
    t000 = status["trials"]["t000"]
    assert (t000["phase"], t000["attempts"], t000["parkedAt"]) == ("Running", 1, 10)


def test_no_trial_is_parked_for_pods_no_node_could_ever_take() -> None:
    selector = copy.deepcopy(NO_GPU)
    selector["conditions"][0]["message"] = (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    )
    _, result = _one_at_its_first_rung(selector)
    assert result.status is not None
    assert result.status["trials"]["t000"]["parkedAt"] == 0


def test_no_trial_is_parked_while_a_pod_on_its_way_out_makes_room() -> None:
    deleting = {
        "metadata": {
            "name": "s-t002-1",
            "labels": {
                "lrsweep.dev/sweep": "s",
                "lrsweep.dev/trial": "t002",
                "lrsweep.dev/attempt": "1",
            },
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {"phase": "Running", "podIP": "10.0.0.3"},
    }
    _, result = _one_at_its_first_rung(NO_GPU, leaving=deleting)
    assert result.status is not None
    assert result.status["trials"]["t000"]["parkedAt"] == 0


def test_a_running_trial_that_never_served_metrics_fails_after_the_start_grace() -> None:
    no_retry = {**SPEC, "trial": {**SPEC["trial"], "maxRetries": 0}}
    cluster = MemoryCluster()
    first = run(cluster, body(no_retry))
    cluster.run_pod("s-t000-1", "10.0.0.1", {})
    cluster.metrics.clear()  # nothing answers at its metrics port
    started = {"running": {"startedAt": "2025-12-31T23:54:00Z"}}  # 6 minutes before `run`'s
    cluster.pods["s-t000-1"]["status"]["containerStatuses"] = [{"name": "t", "state": started}]
    status = run(cluster, body(no_retry, first.status)).status
    assert status is not None
    trial = status["trials"]["t000"]
    assert trial["phase"] == "Failed"
    assert "served no metrics at http://10.0.0.1:9090/history in 300 s running" in trial["reason"]


def test_a_running_trial_within_the_start_grace_is_not_failed_for_silence() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.run_pod("s-t000-1", "10.0.0.1", {})
    cluster.metrics.clear()
    started = {"running": {"startedAt": "2025-12-31T23:59:00Z"}}
    cluster.pods["s-t000-1"]["status"]["containerStatuses"] = [{"name": "t", "state": started}]
    status = run(cluster, body(status=first.status)).status or first.status
    assert status is not None
    assert status["trials"]["t000"]["queued"] is False


def test_a_running_trial_whose_step_stood_still_past_the_deadline_fails_as_hung() -> None:
    no_retry = {**SPEC, "trial": {**SPEC["trial"], "maxRetries": 0}}
    cluster = MemoryCluster()
    first = run(cluster, body(no_retry))
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 10: {"val_loss": "1.5"}})
    seen = run(cluster, body(no_retry, first.status)).status
    assert seen is not None
    assert seen["trials"]["t000"]["step"] == 10
    assert seen["trials"]["t000"]["progressTime"] == "2026-01-01T00:00:00Z"
    seen["trials"]["t000"]["progressTime"] = "2025-12-31T23:29:00Z"  # 31 minutes before
    status = run(cluster, body(no_retry, seen)).status
    assert status is not None
    trial = status["trials"]["t000"]
    assert trial["phase"] == "Failed"
    assert "made no progress for over 1800 s (at step 10)" in trial["reason"]


def test_a_trial_that_moved_keeps_running_whatever_its_progress_time() -> None:
    cluster = MemoryCluster()
    first = run(cluster, body())
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 10: {"val_loss": "1.5"}})
    seen = run(cluster, body(status=first.status)).status
    assert seen is not None
    seen["trials"]["t000"]["progressTime"] = "2025-12-31T23:29:00Z"
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 20: {"val_loss": "1.2"}})
    status = run(cluster, body(status=seen)).status
    assert status is not None
    assert status["trials"]["t000"]["phase"] == "Running"
    assert status["trials"]["t000"]["progressTime"] == "2026-01-01T00:00:00Z"


def test_the_time_a_trial_last_advanced_is_exported_for_the_sweep() -> None:
    cluster = MemoryCluster()
    run(cluster, body())
    moment = cluster.telemetry.registry.get_sample_value(
        "lrsweep_sweep_last_progress_timestamp_seconds", {"namespace": "ml", "sweep": "s"}
    )
    assert moment == dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


def _running_at_step_10(cluster: MemoryCluster) -> dict[str, Any]:
    """The status once t000 runs and has reported step 10 (written at `run`'s time)."""
    first = run(cluster, body())
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 10: {"val_loss": "1.5"}})
    seen = run(cluster, body(status=first.status)).status
    assert seen is not None
    assert seen["trials"]["t000"]["phase"] == "Running"
    return seen


def test_a_running_trials_progress_alone_waits_for_the_progress_interval() -> None:
    cluster = MemoryCluster()
    seen = _running_at_step_10(cluster)
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 20: {"val_loss": "1.2"}})
    early = run(cluster, body(status=seen), now="2026-01-01T00:00:09Z")
    assert early.status is None
    due = run(cluster, body(status=seen), now="2026-01-01T00:00:10Z").status
    assert due is not None
    assert due["trials"]["t000"]["step"] == 20
    assert due["trials"]["t000"]["progressTime"] == "2026-01-01T00:00:10Z"


def test_a_progress_interval_of_zero_writes_every_step() -> None:
    cluster = MemoryCluster()
    seen = _running_at_step_10(cluster)
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 20: {"val_loss": "1.2"}})
    every = OperatorSettings(progress_write_interval=0)
    status = run(cluster, body(status=seen), now="2026-01-01T00:00:01Z", settings=every).status
    assert status is not None
    assert status["trials"]["t000"]["step"] == 20


def test_a_trial_that_ends_is_written_within_the_progress_interval() -> None:
    cluster = MemoryCluster()
    seen = _running_at_step_10(cluster)
    cluster.pods["s-t000-1"]["status"]["phase"] = "Failed"
    status = run(cluster, body(status=seen), now="2026-01-01T00:00:01Z").status
    assert status is not None
    assert status["trials"]["t000"]["phase"] != "Running"


def _trial(**fields: Any) -> dict[str, Any]:
    trial = {"phase": "Running", "step": 10, "verdict": "unknown", "reason": "", "rungs": {}}
    return {**trial, **fields}


@pytest.mark.parametrize(
    "after",
    [
        {"t000": _trial(step=20, verdict="converging", reason="loss fell 30%")},
        {"t000": _trial(progressTime="2026-01-01T00:00:09Z")},
    ],
    ids=["step-verdict-reason", "progress-time"],
)
def test_a_running_trial_moving_on_is_progress_only(after: dict[str, Any]) -> None:
    assert progress_only(
        {"phase": "Running", "trials": {"t000": _trial()}},
        {
            "phase": "Running",
            "trials": after,
        },
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"t000": _trial()}, {"t000": _trial(rungs={"10": 1.5})}),
        ({"t000": _trial()}, {"t000": _trial(phase="Stopped", step=20)}),
        ({"t000": _trial(phase="Pending", step=0)}, {"t000": _trial()}),
        ({"t000": _trial()}, {"t000": _trial(), "t001": _trial(phase="Pending")}),
    ],
    ids=["rung-reached", "trial-decided", "trial-started", "trial-added"],
)
def test_what_the_sweep_decides_is_not_progress_only(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert not progress_only(
        {"phase": "Running", "trials": before}, {"phase": "Running", "trials": after}
    )


def test_a_change_outside_the_trials_is_not_progress_only() -> None:
    trials = {"t000": _trial()}
    assert not progress_only(
        {"phase": "Running", "trials": trials, "bestLearningRate": None},
        {"phase": "Running", "trials": trials, "bestLearningRate": 0.1},
    )


def test_a_reconciles_events_of_one_kind_are_posted_as_one() -> None:
    events = [("Normal", "TrialStarted", "t000: rate 0.1"), ("Normal", "TrialStarted", "t001")]
    assert combined(events) == [("Normal", "TrialStarted", "t000: rate 0.1; t001")]


def test_events_of_different_kinds_keep_the_order_each_kind_first_came_in() -> None:
    events = [
        ("Normal", "TrialStopped", "t000"),
        ("Warning", "TrialFailed", "t001"),
        ("Normal", "TrialStopped", "t002"),
    ]
    assert combined(events) == [
        ("Normal", "TrialStopped", "t000; t002"),
        ("Warning", "TrialFailed", "t001"),
    ]


def test_messages_past_the_length_of_one_event_go_on_in_another() -> None:
    events = [("Normal", "TrialStarted", "x" * 6)] * 3
    assert combined(events, limit=14) == [
        ("Normal", "TrialStarted", "xxxxxx; xxxxxx"),
        ("Normal", "TrialStarted", "xxxxxx"),
    ]
