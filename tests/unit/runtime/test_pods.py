"""Building trial pods and the result ConfigMap (`runtime.pods`), without a cluster.

Covers: deterministic pod names within 63 characters, whole for the longest sweep name
allowed; the trial pod carries the labels, owner reference, env contract (rate, pod IP
binding), restartPolicy Never and metrics port, keeps the user's template (resources, env
after ours); the result ConfigMap; the pods a new sweep starts with (`lrsweep render`), owned
by the sweep only where it has a uid, told the gate timeout and the objective only when
gated; IPv6 pod URLs.
"""

from __future__ import annotations

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


def test_an_ipv6_pod_address_is_bracketed_in_its_url() -> None:
    assert pod_url("fd00::5", 9090, "/metrics") == "http://[fd00::5]:9090/metrics"
    assert pod_url("10.1.2.3", 9090, "/metrics") == "http://10.1.2.3:9090/metrics"
