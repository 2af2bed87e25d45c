"""benchmarks.gpu_scarce's sampling: which pods wait for a GPU, which hold one, which belong
to a parked trial; and the quickstart it runs asks for one GPU per trial."""

from __future__ import annotations

from kubernetes import client

from benchmarks.gpu_scarce import gpu_quickstart, holds_gpu, parked, waits_for_gpu


def pod(phase: str, scheduled: bool, message: str = "", trial: str = "t000") -> client.V1Pod:
    condition = client.V1PodCondition(
        type="PodScheduled", status="True" if scheduled else "False", message=message
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            labels={"lrsweep.dev/trial": trial, "lrsweep.dev/attempt": "1"}
        ),
        status=client.V1PodStatus(phase=phase, conditions=[condition]),
    )


def test_a_pending_pod_the_scheduler_has_no_gpu_for_waits_for_one() -> None:
    no_gpu = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert waits_for_gpu(pod("Pending", False, no_gpu))
    assert not waits_for_gpu(pod("Pending", False, "0/1 nodes: node selector"))
    assert not waits_for_gpu(pod("Running", True))


def test_a_scheduled_pod_that_has_not_ended_holds_its_gpu() -> None:
    assert holds_gpu(pod("Running", True))
    assert holds_gpu(pod("Pending", True))  # pulling its image
    assert not holds_gpu(pod("Succeeded", True))
    assert not holds_gpu(pod("Pending", False))


def test_a_pod_of_the_attempt_its_trial_was_parked_in_counts_as_parked() -> None:
    trials = {"t000": {"parkedAt": 75, "attempts": 1}, "t001": {"parkedAt": 0, "attempts": 1}}
    assert parked(pod("Running", True, trial="t000"), trials)
    assert not parked(pod("Running", True, trial="t001"), trials)
    assert not parked(pod("Running", True, trial="t000"), {"t000": {"parkedAt": 75, "attempts": 2}})


def test_the_benchmarked_quickstart_asks_one_gpu_per_trial_and_more_trials_than_gpus() -> None:
    doc = gpu_quickstart()
    limits = doc["spec"]["trial"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert doc["spec"]["search"]["parallelism"] == 4
