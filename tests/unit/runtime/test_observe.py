"""Reading trial pods (`runtime.observe`), without a cluster.

Covers: reading ended pods (termination message summary, a failed summary's reason, exit
codes, exit code 2 a usage error, eviction); unschedulable reasons; containers the kubelet
cannot start (pending, or a failed attempt at once or after the grace, counted from
scheduling); which live pods a stored status no longer wants.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lrsweep.api import LRSweepStatus
from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.observe import (
    observe_ended_pod,
    observe_stuck_pod,
    unschedulable_reason,
    unwanted_pods,
)


def _ended(code: int, message: str = "", **status: Any) -> dict[str, Any]:
    return {
        "status": {
            "phase": "Failed" if code else "Succeeded",
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": code, "message": message}}}
            ],
            **status,
        }
    }


def test_an_ended_pod_is_read_from_its_termination_message() -> None:
    summary = {
        "status": "finished",
        "step": 300,
        "reason": "done",
        "history": {"step": [300], "val_loss": [0.5]},
    }
    obs = observe_ended_pod("t001", 1, _ended(0, json.dumps(summary)))
    assert obs.state is ProcessState.EXITED
    assert obs.outcome is Outcome.FINISHED
    assert obs.points[0].metrics == {"val_loss": 0.5}


def test_a_non_zero_exit_is_a_failure_naming_the_code() -> None:
    obs = observe_ended_pod("t001", 1, _ended(1, "Traceback...\nValueError: boom"))
    assert obs.outcome is Outcome.FAILED
    assert obs.reason == "exit code 1: ValueError: boom"


def test_a_failed_pod_says_the_reason_its_summary_gives() -> None:
    summary = {
        "status": "failed",
        "step": 0,
        "reason": "RuntimeError at step 0: --device cuda was asked for, but CUDA is not available",
    }
    obs = observe_ended_pod("t001", 1, _ended(1, json.dumps(summary)))
    assert obs.outcome is Outcome.FAILED
    assert obs.reason == f"exit code 1: {summary['reason']}"


def test_a_pod_whose_trainer_exits_2_is_a_usage_error() -> None:
    obs = observe_ended_pod("t001", 1, _ended(2, "error: argument --task: unknown task"))
    assert obs.outcome is Outcome.FAILED
    assert obs.permanent


def test_an_evicted_pod_is_lost_not_failed() -> None:
    obs = observe_ended_pod("t001", 1, _ended(137, reason="Evicted", message="node pressure"))
    assert obs.state is ProcessState.LOST
    assert "evicted" in obs.reason


def test_unschedulable_pods_report_the_schedulers_message() -> None:
    pod = {
        "status": {
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
    }
    assert unschedulable_reason(pod) == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def _waiting(reason: str, scheduled: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}
            ],
            "containerStatuses": [{"state": {"waiting": {"reason": reason, "message": "m"}}}],
        }
    }


NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FAILED, PENDING = ProcessState.EXITED, ProcessState.PENDING


@pytest.mark.parametrize(
    ("reason", "waited", "state", "retried"),
    [
        ("InvalidImageName", 0, FAILED, False),  # the template's image: every attempt alike
        ("CreateContainerConfigError", 0, FAILED, True),  # a ConfigMap/Secret may appear
        ("ErrImagePull", 300, PENDING, True),
        ("ImagePullBackOff", 300, PENDING, True),
        ("CreateContainerError", 300, PENDING, True),
        ("ErrImagePull", 301, FAILED, True),
        ("ImagePullBackOff", 301, FAILED, True),
        ("CreateContainerError", 301, FAILED, True),
        ("ContainerCreating", 3600, None, True),  # a slow pull is not stuck
    ],
)
def test_a_container_that_cannot_start_is_pending_or_fails_its_attempt(
    reason: str, waited: int, state: ProcessState | None, retried: bool
) -> None:
    scheduled = (NOW - dt.timedelta(seconds=waited)).isoformat()
    obs = observe_stuck_pod("t001", 1, _waiting(reason, scheduled), NOW, grace=300)
    assert (obs.state if obs is not None else None) is state
    if obs is not None:
        assert obs.reason.startswith(f"{reason}: m")
        assert obs.permanent is not retried


@pytest.mark.parametrize(
    "message",
    [
        'failed to pull and unpack image "r.io/t:1": failed to resolve reference "r.io/t:1": '
        "r.io/t:1: not found",
        "pull access denied, repository does not exist or may require authorization",
        "manifest unknown: manifest unknown",
    ],
)
def test_an_image_the_registry_says_is_not_there_fails_at_once_for_good(message: str) -> None:
    pod = _waiting("ErrImagePull", NOW.isoformat())
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = message
    obs = observe_stuck_pod("t001", 1, pod, NOW, grace=300)
    assert obs is not None
    assert (obs.state, obs.permanent) == (ProcessState.EXITED, True)
    assert obs.reason == f"ErrImagePull: {message}"


def test_a_pod_waiting_for_its_node_is_not_stuck_before_it_is_scheduled() -> None:
    pod = _waiting("ImagePullBackOff", "2026-01-01T00:00:00Z")
    pod["metadata"] = {"creationTimestamp": "2025-12-31T00:00:00Z"}  # a day waiting for a GPU
    obs = observe_stuck_pod("t001", 1, pod, NOW + dt.timedelta(seconds=60), grace=300)
    assert obs is not None
    assert obs.state is ProcessState.PENDING


def test_an_image_pull_fails_its_attempt_after_the_grace_given_and_says_so() -> None:
    scheduled = (NOW - dt.timedelta(seconds=400)).isoformat()
    pod = _waiting("ImagePullBackOff", scheduled)
    waiting = observe_stuck_pod("t001", 1, pod, NOW, grace=600)
    failed = observe_stuck_pod("t001", 1, pod, NOW, grace=120)
    assert waiting is not None
    assert waiting.state is ProcessState.PENDING
    assert failed is not None
    assert failed.state is ProcessState.EXITED
    assert failed.reason.endswith("(for over 120 s)")


def _pod(trial: str, attempt: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"s-{trial}-{attempt}",
            "labels": {"lrsweep.dev/trial": trial, "lrsweep.dev/attempt": str(attempt)},
        },
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("trial", "pod", "deleted"),
    [
        ({"phase": "Running", "attempts": 1, "queued": False}, _pod("t000", 1), False),
        ({"phase": "Stopped", "attempts": 1, "queued": False}, _pod("t000", 1), True),
        ({"phase": "Diverged", "attempts": 1, "queued": False}, _pod("t000", 1), True),
        ({"phase": "Stopped", "attempts": 1, "queued": False}, _pod("t000", 1, "Failed"), False),
        ({"phase": "Pending", "attempts": 1, "queued": True}, _pod("t000", 1), True),  # failed
        ({"phase": "Running", "attempts": 2, "queued": False}, _pod("t000", 1), True),
        # A status older than the pod (kopf's body can lag its own write): never deleted.
        ({"phase": "Pending", "attempts": 0, "queued": True}, _pod("t000", 1), False),
        ({"phase": "Running", "attempts": 1, "queued": False}, _pod("t999", 1), False),
    ],
)
def test_pods_a_stored_status_no_longer_wants(
    trial: dict[str, Any], pod: dict[str, Any], deleted: bool
) -> None:
    status = LRSweepStatus.model_validate(
        {"phase": "Running", "trials": {"t000": {"learningRate": 0.1, **trial}}}
    )
    assert unwanted_pods(status, [pod]) == ([pod["metadata"]["name"]] if deleted else [])


def test_every_live_pod_of_a_finished_sweep_is_unwanted() -> None:
    status = LRSweepStatus.model_validate({"phase": "Failed", "trials": {}})
    pods = [_pod("t000", 1), _pod("t001", 1, "Succeeded"), _pod("t002", 1, "Pending")]
    assert unwanted_pods(status, pods) == ["s-t000-1", "s-t002-1"]
