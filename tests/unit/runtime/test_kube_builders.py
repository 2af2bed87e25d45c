"""Pure builders of the Kubernetes runtime, without a cluster.

Covers: deterministic pod names within 63 characters, whole for the longest sweep name
allowed; the trial pod carries the labels, owner reference, env contract (rate, pod IP
binding), restartPolicy Never and metrics port, keeps the user's template (resources, env
after ours); the result ConfigMap; reading ended pods (termination message summary, a failed
summary's reason, exit codes, exit code 2 a usage error, eviction); unschedulable reasons;
the pods a new sweep starts with (`lrsweep render`), owned by the sweep only where it has a
uid, told the gate timeout and the objective only when gated; containers the kubelet cannot
start (pending, or a failed attempt at once or after the grace, counted from scheduling);
which live pods a stored status no longer wants; IPv6 pod URLs.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lrsweep.api import (
    MAX_NAME_LENGTH,
    MAX_RETRIES_LIMIT,
    MAX_TRIALS_LIMIT,
    LRSweepSpec,
    LRSweepStatus,
    parse_sweep,
)
from lrsweep.engine.sweep import Launch, trial_id
from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.observe import (
    observe_ended_pod,
    observe_stuck_pod,
    unschedulable_reason,
    unwanted_pods,
)
from lrsweep.runtime.pods import (
    build_result_configmap,
    build_trial_pod,
    first_pods,
    pod_name,
    pod_url,
)

BODY: dict[str, Any] = {
    "apiVersion": "lrsweep.dev/v1alpha1",
    "kind": "LRSweep",
    "metadata": {"name": "resnet-lr", "namespace": "ml", "uid": "u-1"},
    "spec": {
        "trial": {
            "template": {
                "metadata": {"labels": {"team": "vision"}},
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "reg/trainer:1",
                            "args": ["--lr", "$(LRSWEEP_LEARNING_RATE)"],
                            "env": [{"name": "MINE", "value": "$(LRSWEEP_TRIAL)"}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ]
                },
            }
        },
        "output": {"configMap": "resnet-lr-result"},
    },
}
SPEC = LRSweepSpec.model_validate(BODY["spec"])
LAUNCH = Launch("t004", 2, 0.0316, 0, "train", 3000, 100, (300, 900, 3000))


def test_pod_name_is_deterministic_and_fits_a_dns_label() -> None:
    assert pod_name("resnet-lr", "t004", 2) == "resnet-lr-t004-2"
    long = pod_name("x" * 80, "t004", 2)
    assert len(long) <= 63
    assert long.endswith("-t004-2")


def test_the_longest_sweep_name_allowed_keeps_every_trial_pod_name_whole() -> None:
    name = "x" * MAX_NAME_LENGTH
    parse_sweep({**BODY, "metadata": {"name": name}})
    trial, attempt = trial_id(MAX_TRIALS_LIMIT - 1), MAX_RETRIES_LIMIT + 1
    assert pod_name(name, trial, attempt) == f"{name}-{trial}-{attempt}"
    assert len(pod_name(name, trial, attempt)) <= 63


def test_trial_pod_is_labelled_and_owned_by_the_sweep() -> None:
    pod = build_trial_pod(BODY, SPEC, LAUNCH)
    assert pod["metadata"]["name"] == "resnet-lr-t004-2"
    assert pod["metadata"]["namespace"] == "ml"
    assert pod["metadata"]["labels"] == {
        "team": "vision",
        "lrsweep.dev/sweep": "resnet-lr",
        "lrsweep.dev/trial": "t004",
        "lrsweep.dev/attempt": "2",
    }
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "LRSweep",
        "resnet-lr",
        "u-1",
        True,
    )


def test_trial_pod_never_restarts_and_exposes_metrics() -> None:
    pod = build_trial_pod(BODY, SPEC, LAUNCH)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert {"name": "metrics", "containerPort": 9090} in pod["spec"]["containers"][0]["ports"]


def test_trial_pod_carries_the_env_contract_before_the_users_env() -> None:
    env = build_trial_pod(BODY, SPEC, LAUNCH)["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    values = {e["name"]: e.get("value") for e in env}
    assert values["LRSWEEP_LEARNING_RATE"] == "0.0316"
    assert values["LRSWEEP_TRIAL"] == "t004"
    assert values["LRSWEEP_METRICS_PORT"] == "9090"
    assert values["LRSWEEP_TERMINATION_PATH"] == "/dev/termination-log"
    host = next(e for e in env if e["name"] == "LRSWEEP_METRICS_HOST")
    assert host["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert names.index("MINE") > names.index("LRSWEEP_TRIAL")


def _trainer_env(spec: LRSweepSpec, launch: Launch = LAUNCH) -> dict[str, Any]:
    env = build_trial_pod(BODY, spec, launch)["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value") for e in env}


def test_a_trial_pod_keeps_its_checkpoints_in_a_directory_of_its_own_sweep_and_trial() -> None:
    trial = {**BODY["spec"]["trial"], "checkpointDir": "/ckpt/"}
    spec = LRSweepSpec.model_validate({**BODY["spec"], "trial": trial})
    assert _trainer_env(spec)["LRSWEEP_CHECKPOINT_DIR"] == "/ckpt/resnet-lr-u-1/t004"


def test_a_trial_pod_gets_no_checkpoint_directory_unless_the_sweep_names_one() -> None:
    assert "LRSWEEP_CHECKPOINT_DIR" not in _trainer_env(SPEC)


def test_a_trial_pod_is_told_how_often_to_keep_a_checkpoint_where_the_sweep_says() -> None:
    trial = {**BODY["spec"]["trial"], "checkpointDir": "/ckpt", "checkpointEvery": 200}
    spec = LRSweepSpec.model_validate({**BODY["spec"], "trial": trial})
    assert _trainer_env(spec)["LRSWEEP_CHECKPOINT_EVERY"] == "200"
    assert "LRSWEEP_CHECKPOINT_EVERY" not in _trainer_env(SPEC)


def test_a_checkpoint_directory_must_be_an_absolute_path() -> None:
    with pytest.raises(ValueError, match="checkpointDir"):
        LRSweepSpec.model_validate(
            {**BODY["spec"], "trial": {**BODY["spec"]["trial"], "checkpointDir": "ckpt"}}
        )


def test_trial_pod_keeps_the_users_resources_as_quantity_strings() -> None:
    pod = build_trial_pod(BODY, SPEC, LAUNCH)
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_building_a_pod_leaves_the_template_untouched() -> None:
    build_trial_pod(BODY, SPEC, LAUNCH)
    container = SPEC.trial.template["spec"]["containers"][0]
    assert "ports" not in container
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1}}


def test_result_configmap_holds_the_winner() -> None:
    status = LRSweepStatus(bestLearningRate=0.0316, bestTrial="t004", bestScore=0.231)
    cm = build_result_configmap(BODY, status)
    assert cm["metadata"]["name"] == "resnet-lr-result"
    assert cm["data"]["learningRate"] == "0.0316"
    assert json.loads(cm["data"]["result.json"])["bestTrial"] == "t004"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u-1"


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


def _sweep_doc(uid: str = "", **search: Any) -> Any:
    return parse_sweep(
        {
            **BODY,
            "metadata": {"name": "resnet-lr", "namespace": "ml", "uid": uid},
            "spec": {**BODY["spec"], "search": search},
        }
    )


def test_a_new_adaptive_sweep_starts_with_its_range_test_pod() -> None:
    (pod,) = first_pods(_sweep_doc(), gate_timeout=300.0)
    assert pod["metadata"]["annotations"]["lrsweep.dev/mode"] == "range-test"


def test_a_new_grid_sweep_starts_with_as_many_pods_as_its_parallelism() -> None:
    values = [0.001, 0.01, 0.1]
    pods = first_pods(_sweep_doc(strategy="grid", values=values, parallelism=2), 300.0)
    rates = [p["metadata"]["annotations"]["lrsweep.dev/learning-rate"] for p in pods]
    assert rates == ["0.001", "0.01"]


def test_gated_pods_are_told_the_metric_their_rungs_compare() -> None:
    (pod,) = first_pods(_sweep_doc(strategy="asha", values=[0.01], parallelism=1), 300.0)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["LRSWEEP_GATE_TIMEOUT"] == "300"
    assert env["LRSWEEP_OBJECTIVE"] == "val_loss"


def test_ungated_pods_get_no_objective() -> None:
    (pod,) = first_pods(_sweep_doc(strategy="grid", values=[0.01], parallelism=1), 300.0)
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert not names & {"LRSWEEP_GATE_TIMEOUT", "LRSWEEP_OBJECTIVE"}


def test_first_pods_are_owned_by_the_sweep_only_when_it_has_a_uid() -> None:
    (without,) = first_pods(_sweep_doc(), 300.0)
    (owned,) = first_pods(_sweep_doc(uid="u-9"), 300.0)
    assert "ownerReferences" not in without["metadata"]
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "u-9"


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


def test_an_ipv6_pod_address_is_bracketed_in_its_url() -> None:
    assert pod_url("fd00::5", 9090, "/metrics") == "http://[fd00::5]:9090/metrics"
    assert pod_url("10.1.2.3", 9090, "/metrics") == "http://10.1.2.3:9090/metrics"
