"""The operator end to end on the test cluster, driven with kubectl as a user would.

Covers: the quickstart reaches Succeeded with the winner `lrsweep run` picks for the same
spec, and `kubectl get lrs` shows the printer columns; SIGKILLing the operator at random
points never duplicates a (trial, attempt) pod, and the sweep still completes with the same
winner; invalid specs are refused by the schema/CEL at apply time, or end Failed with a
condition naming the field, while a valid sweep beside them completes; a trainer that exits
1 is retried then marked Failed while the sweep goes on, and a diverging rate is
`diverged`; a budget of `steps` alone is accepted, its evaluations and rungs following
it; a sweep whose trials do not report its objective ends Failed at once, naming what they
report; a GPU sweep on a node without GPUs reports Unschedulable; an image that
cannot be pulled shows in the same condition; API faults (500/429, latency, dropped watches)
do not stop a sweep; deleting a sweep removes its pods; the winner also lands in the output
ConfigMap, with events for trial starts and the winner; an output ConfigMap the sweep does
not own is left alone (a Warning event, the sweep's message say so) and outlives the sweep,
while one it owns is updated; a misspelt field in the trial template fails the sweep naming
it; a running sweep's spec cannot be changed; a trial whose pod is deleted mid-run goes on
from its checkpoint in `spec.trial.checkpointDir`, and trials the sweep stopped leave no
checkpoint behind.

These tests also run against a real cluster (LRSWEEP_E2E_KUBECONFIG): the trial pods then
need the trainer image; tests that need the harness's kubelet or faults say so and skip.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Operator, apply, get_sweep, wait_phase
from tests.e2e.conftest import QUICKSTART, LocalRun
from tests.e2e.toy import toy_sweep_doc
from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness.threaded import ThreadedHarness

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def toy_sweep(
    name: str, search: dict[str, Any], env: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A sweep of the torch-free toy trainer: fast, deterministic, misbehaves on request."""
    return toy_sweep_doc(name, search, env, parallelism=3, max_retries=1, **spec)


def local_winner(doc: dict[str, Any], tmp_path: Path) -> float:
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "local"
    done = subprocess.run(
        [sys.executable, "-m", "lrsweep.cli", "run", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rate: float = json.loads((out / "result.json").read_text())["bestLearningRate"]
    return rate


def needs_local_kubelet(cluster: KubeCluster) -> None:
    if not cluster.capabilities.local_kubelet:
        pytest.skip("the toy trainer runs as a host command: needs the harness's kubelet")


def test_quickstart_succeeds_with_the_local_winner_and_shows_columns(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator, local_quickstart: LocalRun
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(QUICKSTART))
    sweep = wait_phase(kube_cluster, kube_namespace, "quickstart", ("Succeeded", "Failed"), 400)
    status = sweep["status"]
    assert status["phase"] == "Succeeded", status
    table = kube_cluster.kubectl("get", "lrs", "-n", kube_namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "BEST", "LR", "SCORE", "TRIALS", "REASON", "AGE"]
    assert "quickstart" in table
    assert "Succeeded" in table
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "BestRateFound"
    assert status["bestLearningRate"] == local_quickstart.result()["bestLearningRate"]
    local = local_quickstart.result()["conditions"]
    assert {(c["type"], c["status"], c["reason"]) for c in local} == {
        (c["type"], c["status"], c["reason"]) for c in status["conditions"]
    }


class PodRecorder:
    """Records every pod ever created in a namespace, from a watch."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        from kubernetes import client, watch

        self.api = cluster.client()
        self.core = client.CoreV1Api(self.api)
        # kubernetes.watch is untyped.
        self.watch = watch.Watch()  # type: ignore[no-untyped-call]
        self.seen: dict[str, tuple[str, str]] = {}
        self.namespace = namespace
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch.stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_pod, self.namespace, timeout_seconds=600
            ):
                pod = event["object"]
                labels = pod.metadata.labels or {}
                key = (labels.get("lrsweep.dev/trial", ""), labels.get("lrsweep.dev/attempt", ""))
                self.seen[pod.metadata.uid] = key
        except Exception:
            if not self.closed.is_set():
                raise  # a broken watch while recording would hide pods: fail loudly

    def close(self) -> None:
        self.closed.set()
        self.watch.stop()  # type: ignore[no-untyped-call]
        self.api.close()
        self.thread.join(timeout=10)


def test_sigkilled_operator_duplicates_no_pod_and_picks_the_same_winner(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator, tmp_path: Path
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep(
        "restarts",
        {"strategy": "asha", "values": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]},
        {"TOY_BEHAVIOUR": "slow"},
    )
    recorder = PodRecorder(kube_cluster, kube_namespace)
    try:
        apply(kube_cluster, kube_namespace, doc)
        chaos = random.Random(7)
        for _ in range(4):
            time.sleep(chaos.uniform(1.0, 4.0))
            operator.kill()
            operator.start()
        sweep = wait_phase(kube_cluster, kube_namespace, "restarts", ("Succeeded", "Failed"), 300)
    finally:
        recorder.close()
    keys = list(recorder.seen.values())
    assert len(keys) == len(set(keys)), f"two pods share a (trial, attempt): {sorted(keys)}"
    assert sweep["status"]["phase"] == "Succeeded"
    assert sweep["status"]["bestLearningRate"] == local_winner(doc, tmp_path)


def test_invalid_specs_are_refused_or_fail_with_a_condition_beside_a_valid_sweep(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    valid = toy_sweep("valid", {"strategy": "grid", "values": [0.05, 0.1]})
    apply(kube_cluster, kube_namespace, valid)

    bounds = toy_sweep("bad-bounds", {"min": 1.0, "max": 0.1})
    refused = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump(bounds), check=False
    )
    assert refused.returncode != 0
    assert "search.min must be below search.max" in refused.stderr

    unknown = toy_sweep("typo", {"strategy": "grid", "candidatez": 3})
    refused = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump(unknown), check=False
    )
    assert refused.returncode != 0
    assert "candidatez" in refused.stderr

    zero = toy_sweep("zero-rate", {"strategy": "grid", "values": [0.05, 0]})
    refused = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump(zero), check=False
    )
    assert refused.returncode != 0
    assert "spec.search.values[1]" in refused.stderr

    one_step = toy_sweep("one-step", {"strategy": "grid", "values": [0.05]})
    one_step["spec"]["budget"] = {"steps": 1, "evalEvery": 1, "minSteps": 1}
    refused = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump(one_step), check=False
    )
    assert refused.returncode != 0
    assert "budget.steps must be at least 2 x budget.evalEvery" in refused.stderr

    empty = toy_sweep("no-containers", {"strategy": "grid"})
    empty["spec"]["trial"]["template"]["spec"]["containers"] = []
    apply(kube_cluster, kube_namespace, empty)
    failed = wait_phase(kube_cluster, kube_namespace, "no-containers", ("Failed",), 60)
    condition = next(c for c in failed["status"]["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "InvalidSpec"
    assert "spec.trial" in condition["message"]
    assert "containers must list at least one container" in condition["message"]

    done = wait_phase(kube_cluster, kube_namespace, "valid", ("Succeeded", "Failed"), 120)
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["bestLearningRate"] == 0.05


def test_a_cluster_wide_operator_runs_sweeps_in_any_namespace(
    kube_cluster: KubeCluster, kube_namespace: str, crd: str, tmp_path: Path
) -> None:
    # The chart's operator.clusterWide=true: LRSWEEP_CLUSTERWIDE, no LRSWEEP_NAMESPACES.
    needs_local_kubelet(kube_cluster)
    op = Operator(kube_cluster, kube_namespace, tmp_path / "operator.log", clusterwide=True)
    op.start()
    try:
        apply(
            kube_cluster,
            kube_namespace,
            toy_sweep("anywhere", {"strategy": "grid", "values": [0.05]}),
        )
        done = wait_phase(kube_cluster, kube_namespace, "anywhere", ("Succeeded", "Failed"), 120)
    finally:
        op.stop()
    assert done["status"]["phase"] == "Succeeded", op.log()[-3000:]
    assert "Traceback" not in op.log(), op.log()[-5000:]


def test_a_misspelt_field_in_the_trial_template_fails_the_sweep_naming_it(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    # Dropped instead, `comand:` would run the image's own command: the wrong training job.
    doc = toy_sweep("typo-field", {"strategy": "grid", "values": [0.05]})
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["comand"] = container.pop("command")
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "typo-field", ("Succeeded", "Failed"), 60)
    assert sweep["status"]["phase"] == "Failed"
    assert "spec.containers[0].comand: unknown field" in sweep["status"]["message"]


def test_a_running_sweeps_spec_cannot_change(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep("frozen", {"strategy": "grid", "values": [0.05]}, {"TOY_BEHAVIOUR": "slow"})
    apply(kube_cluster, kube_namespace, doc)
    doc["spec"]["search"]["values"] = [0.1]
    refused = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump(doc), check=False
    )
    assert refused.returncode != 0
    assert "spec is immutable once created" in refused.stderr


def test_crashing_trials_are_retried_then_failed_and_diverging_ones_are_diverged(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep(
        "mixed",
        {"strategy": "grid", "values": [0.05, 0.5, 3.0]},
        {"TOY_CRASH_ABOVE": "0.2"},
    )
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "mixed", ("Succeeded", "Failed"), 120)
    trials = {t["learningRate"]: t for t in sweep["status"]["trials"].values()}
    assert trials[0.5]["phase"] == "Failed"
    assert trials[0.5]["attempts"] == 2
    assert "exit code 1" in trials[0.5]["reason"]
    # 3.0 blows up before its first evaluation, so it never reaches the crash.
    assert trials[3.0]["verdict"] == "diverged"
    assert sweep["status"]["phase"] == "Succeeded"
    assert sweep["status"]["bestLearningRate"] == 0.05


def test_a_budget_of_steps_alone_is_accepted_and_swept_with_defaults_that_follow_it(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep("steps-only", {"strategy": "asha", "values": [0.02, 0.05, 0.1]})
    doc["spec"]["budget"] = {"steps": 60}
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "steps-only", ("Succeeded", "Failed"), 120)
    assert "evalEvery" not in sweep["spec"]["budget"]  # left to the operator, not defaulted
    assert sweep["status"]["phase"] == "Succeeded"
    rungs = {int(step) for t in sweep["status"]["trials"].values() for step in t["rungs"]}
    assert {6, 18} <= rungs  # minSteps 60 / 10, x reductionFactor; evaluations every 2 steps


def test_an_objective_the_trials_do_not_report_fails_the_sweep_naming_what_they_report(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    values = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]
    doc = toy_sweep("typo", {"strategy": "grid", "values": values}, objective={"metric": "acc"})
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "typo", ("Succeeded", "Failed"), 120)
    status = sweep["status"]
    assert status["phase"] == "Failed"
    assert "the objective metric 'acc' is not reported" in status["message"]
    assert "set spec.objective.metric" in status["message"]
    assert any(t["attempts"] == 0 for t in status["trials"].values())


def test_a_misnamed_objective_fails_at_the_range_test_before_any_candidate_runs(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep("typo-rt", {"strategy": "adaptive"}, objective={"metric": "acc"})
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "typo-rt", ("Succeeded", "Failed"), 120)
    status = sweep["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith(
        "the objective metric 'acc' is not reported: the range test t000 reported "
    )
    assert all(t["attempts"] == 0 for t in status["trials"].values() if t["mode"] == "train")


def wait_not_schedulable(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    """The sweep's TrialsSchedulable condition, once it is False."""

    def probe() -> dict[str, Any] | None:
        status = get_sweep(cluster, namespace, name).get("status") or {}
        return next(
            (
                c
                for c in status.get("conditions", [])
                if c["type"] == "TrialsSchedulable" and c["status"] == "False"
            ),
            None,
        )

    return wait_for(probe, timeout=60, interval=0.5, message=f"{name}: TrialsSchedulable=False")


def test_a_gpu_sweep_without_gpus_reports_unschedulable(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator, harness: ThreadedHarness
) -> None:
    # `harness`: the test cluster, whose Node has no GPU (a real cluster's nodes may).
    doc = toy_sweep("gpu", {"strategy": "grid", "values": [0.05]})
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    apply(kube_cluster, kube_namespace, doc)
    condition = wait_not_schedulable(kube_cluster, kube_namespace, "gpu")
    assert condition["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in condition["message"]
    row = kube_cluster.kubectl("get", "lrs", "gpu", "-n", kube_namespace).stdout.splitlines()[1]
    assert row.split()[1:2] + row.split()[-2:-1] == ["Running", "Unschedulable"]


def test_an_image_that_cannot_be_pulled_shows_in_a_condition(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    doc = toy_sweep("typo", {"strategy": "grid", "values": [0.05]})
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["image"] = "registry.invalid/lrsweep-trainr:0.1.0"
    del container["command"]  # the test cluster pulls no images: it runs commands
    apply(kube_cluster, kube_namespace, doc)
    condition = wait_not_schedulable(kube_cluster, kube_namespace, "typo")
    assert condition["reason"] == "ContainersCannotStart"
    assert condition["message"].startswith(("t000: ErrImagePull: ", "t000: ImagePullBackOff: "))
    assert "registry.invalid/lrsweep-trainr:0.1.0" in condition["message"]


def test_an_image_the_registry_does_not_have_fails_the_sweep_at_once(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    doc = toy_sweep("typo-image", {"strategy": "grid", "values": [0.05]})
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["image"] = "registry.invalid/lrsweep-trainr:0.1.0"
    del container["command"]  # the test cluster pulls no images: it answers "not found"
    apply(kube_cluster, kube_namespace, doc)
    # Without waiting out the start grace (300 s) once per attempt.
    sweep = wait_phase(kube_cluster, kube_namespace, "typo-image", ("Succeeded", "Failed"), 60)
    message = sweep["status"]["message"]
    assert sweep["status"]["phase"] == "Failed", message
    assert "ErrImagePull" in message
    assert "registry.invalid/lrsweep-trainr:0.1.0: not found" in message
    assert sweep["status"]["trials"]["t000"]["attempts"] == 1  # not retried


def test_api_faults_do_not_stop_a_sweep_or_change_its_winner(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    operator: Operator,
    harness: ThreadedHarness,
    tmp_path: Path,
) -> None:
    harness.set_faults(error_rate=0.05, throttle_rate=0.05, latency=0.02, watch_timeout=3.0, seed=3)
    doc = toy_sweep("faulty", {"strategy": "asha", "values": [0.01, 0.05, 0.1, 0.2]})
    apply_until_accepted(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "faulty", ("Succeeded", "Failed"), 240)
    assert harness.faults_injected() > 0
    harness.reset_faults()
    trials = {t: (v.get("phase"), v.get("reason")) for t, v in sweep["status"]["trials"].items()}
    why = (
        f"{sweep['status'].get('message')}; trials {trials}; operator log: {operator.log()[-3000:]}"
    )
    assert sweep["status"]["phase"] == "Succeeded", why
    assert sweep["status"]["bestLearningRate"] == local_winner(doc, tmp_path)


def apply_until_accepted(cluster: KubeCluster, namespace: str, doc: dict[str, Any]) -> None:
    """kubectl does not retry a 500: a user would run it again, and so does this."""
    for _ in range(20):
        done = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False
        )
        if done.returncode == 0:
            return
    raise AssertionError(f"kubectl apply kept failing: {done.stderr}")


def test_deleting_a_sweep_removes_its_pods_and_the_winner_lands_in_a_configmap(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    doc = toy_sweep(
        "done", {"strategy": "grid", "values": [0.05, 0.1]}, output={"configMap": "done-result"}
    )
    apply(kube_cluster, kube_namespace, doc)
    wait_phase(kube_cluster, kube_namespace, "done", ("Succeeded",), 120)

    def reasons() -> set[str]:
        return {e["reason"] for e in events_of(kube_cluster, kube_namespace, "done")}

    wait_for(
        lambda: {"TrialStarted", "BestRateFound"} <= reasons(),
        timeout=30,
        interval=0.5,
        message=lambda: f"events, got {reasons()}",
    )
    cm = json.loads(
        kube_cluster.kubectl("get", "cm", "done-result", "-n", kube_namespace, "-o", "json").stdout
    )
    assert cm["data"]["learningRate"] == "0.05"

    slow = toy_sweep("slow", {"strategy": "grid", "values": [0.05, 0.1]}, {"TOY_BEHAVIOUR": "slow"})
    apply(kube_cluster, kube_namespace, slow)

    def pods() -> list[str]:
        out = kube_cluster.kubectl(
            "get", "pods", "-n", kube_namespace, "-l", "lrsweep.dev/sweep=slow", "-o", "name"
        ).stdout
        return out.split()

    wait_for(pods, timeout=60, interval=0.5, message="trial pods of 'slow'")
    kube_cluster.kubectl("delete", "lrs", "slow", "-n", kube_namespace, "--wait=true")
    wait_for(lambda: not pods(), timeout=60, interval=0.5, message="pods of 'slow' to go")


def events_of(cluster: KubeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_an_output_configmap_the_sweep_does_not_own_is_left_alone(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    kube_cluster.kubectl(
        "create", "configmap", "settings", "-n", kube_namespace, "--from-literal=mine=1"
    )
    doc = toy_sweep(
        "mine", {"strategy": "grid", "values": [0.05]}, output={"configMap": "settings"}
    )
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "mine", ("Succeeded", "Failed"), 120)
    assert sweep["status"]["phase"] == "Succeeded"
    assert (
        'ConfigMap "settings" exists and is not owned by this sweep' in sweep["status"]["message"]
    )
    warning = wait_for(
        lambda: next(
            (e for e in events_of(kube_cluster, kube_namespace, "mine") if e["type"] == "Warning"),
            None,
        ),
        timeout=30,
        interval=0.5,
        message="a Warning event",
    )
    assert warning["reason"] == "OutputNotWritten"

    kube_cluster.kubectl("delete", "lrs", "mine", "-n", kube_namespace, "--wait=true")
    cm = json.loads(
        kube_cluster.kubectl("get", "cm", "settings", "-n", kube_namespace, "-o", "json").stdout
    )
    assert cm["data"] == {"mine": "1"}
    assert "ownerReferences" not in cm["metadata"]


def test_an_output_configmap_the_sweep_owns_is_updated(
    kube_cluster: KubeCluster, kube_namespace: str, crd: str
) -> None:
    # Written again when the reconcile that wrote it could not write the sweep's status.
    from kubernetes import client

    from lrsweep.api import LRSweepStatus
    from lrsweep.runtime.cluster import Cluster
    from lrsweep.runtime.pods import build_result_configmap
    from lrsweep.telemetry import Telemetry

    doc = toy_sweep("owner", {"strategy": "grid", "values": [0.05]}, output={"configMap": "won"})
    apply(kube_cluster, kube_namespace, doc)  # no operator: it stays as it is
    body = get_sweep(kube_cluster, kube_namespace, "owner")
    api = kube_cluster.client()
    cluster = Cluster(client.CoreV1Api(api), Telemetry())

    async def write(rate: float) -> str | None:
        cm = build_result_configmap(body, LRSweepStatus(bestLearningRate=rate, bestTrial="t000"))
        return await cluster.apply_configmap(kube_namespace, cm)

    try:
        assert asyncio.run(write(0.1)) is None
        assert asyncio.run(write(0.05)) is None
    finally:
        api.close()
    cm = json.loads(
        kube_cluster.kubectl("get", "cm", "won", "-n", kube_namespace, "-o", "json").stdout
    )
    assert cm["data"]["learningRate"] == "0.05"
    assert [o["uid"] for o in cm["metadata"]["ownerReferences"]] == [body["metadata"]["uid"]]


def test_a_trial_whose_pod_is_deleted_goes_on_from_its_checkpoint(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator, tmp_path: Path
) -> None:
    needs_local_kubelet(kube_cluster)  # the checkpoint directory is a path on this host
    doc = toy_sweep(
        "kept",
        {"strategy": "grid", "values": [0.05]},
        {"TOY_BEHAVIOUR": "slow", "TOY_CHECKPOINT": "1"},
    )
    doc["spec"]["trial"]["checkpointDir"] = str(tmp_path / "checkpoints")
    apply(kube_cluster, kube_namespace, doc)

    def step() -> int:
        trials = get_sweep(kube_cluster, kube_namespace, "kept").get("status", {}).get("trials")
        return int(trials["t000"]["step"]) if trials else 0

    wait_for(lambda: step() >= 30, timeout=60, interval=0.2, message="the trial at step 30")
    kube_cluster.kubectl("delete", "pod", "kept-t000-1", "-n", kube_namespace, "--wait=false")
    sweep = wait_phase(kube_cluster, kube_namespace, "kept", ("Succeeded", "Failed"), 120)
    trial = sweep["status"]["trials"]["t000"]
    assert sweep["status"]["phase"] == "Succeeded"
    assert trial["attempts"] == 2
    assert trial["startStep"] >= 30
    assert trial["step"] == 100


def test_trials_the_sweep_stopped_leave_no_checkpoints_behind(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator, tmp_path: Path
) -> None:
    needs_local_kubelet(kube_cluster)
    values = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    doc = toy_sweep("cut", {"strategy": "asha", "values": values}, {"TOY_CHECKPOINT": "1"})
    doc["spec"]["trial"]["checkpointDir"] = str(tmp_path / "checkpoints")
    apply(kube_cluster, kube_namespace, doc)
    sweep = wait_phase(kube_cluster, kube_namespace, "cut", ("Succeeded", "Failed"), 120)
    phases = [t["phase"] for t in sweep["status"]["trials"].values()]
    assert "Stopped" in phases
    assert any((tmp_path / "checkpoints").iterdir()), "no trial kept a checkpoint"

    def left() -> list[str]:
        return [str(p) for p in (tmp_path / "checkpoints").rglob("checkpoint.pt*")]

    wait_for(
        lambda: not left(),
        timeout=30,
        interval=0.5,
        message=lambda: f"gone: {left()}; operator log: {operator.log()[-3000:]}",
    )
