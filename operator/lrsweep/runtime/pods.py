"""Trial pods and the result ConfigMap as the operator creates them, and a trial pod's
identity read back from its labels.

Pure: plain dicts from the sweep's body, spec and the engine's launches, tested without a
cluster; `lrsweep render` prints what `first_pods` builds.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from lrsweep import api, contract
from lrsweep.api import LRSweep, LRSweepSpec, LRSweepStatus
from lrsweep.engine.sweep import Launch, Sweep, decide
from lrsweep.runtime.env import contract_env

LABEL_SWEEP = f"{api.GROUP}/sweep"
LABEL_TRIAL = f"{api.GROUP}/trial"
LABEL_ATTEMPT = f"{api.GROUP}/attempt"
DEFAULT_TERMINATION_PATH = contract.DEFAULT_TERMINATION_PATH


def pod_name(sweep: str, trial: str, attempt: int) -> str:
    """Deterministic, so a restarted operator re-creating a pod gets AlreadyExists."""
    suffix = f"-{trial}-{attempt}"
    return sweep[: 63 - len(suffix)].rstrip("-.") + suffix


def pod_url(ip: str, port: int, path: str) -> str:
    """An HTTP URL on a pod's address; an IPv6 address goes in brackets (RFC 3986)."""
    try:
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:  # not an IP address: leave it to the HTTP client to refuse
        host = ip
    return f"http://{host}:{port}{path}"


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _quantities_as_strings(container: dict[str, Any]) -> None:
    """Resource quantities the way the API returns them (`1` -> `"1"`).

    YAML users write `nvidia.com/gpu: 1`; the API accepts it, but the Python client
    validates a pod body against its string-typed quantity fields before sending it.
    """
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        if isinstance(resources.get(kind), dict):
            resources[kind] = {k: str(v) for k, v in resources[kind].items()}


def trial_checkpoint_dir(body: Mapping[str, Any], spec: LRSweepSpec, trial: str) -> str | None:
    """A trial's directory under `spec.trial.checkpointDir`: one per sweep object (its uid
    tells a sweep from an earlier one of the same name) and trial."""
    root = spec.trial.checkpointDir
    if root is None:
        return None
    meta = body["metadata"]
    sweep = f"{meta['name']}-{str(meta.get('uid') or '')[:8]}".rstrip("-")
    return f"{root.rstrip('/')}/{sweep}/{trial}"


def build_trial_pod(
    body: Mapping[str, Any], spec: LRSweepSpec, launch: Launch, gate_timeout: float = 0.0
) -> dict[str, Any]:
    """The Pod of one trial attempt, from the user's pod template."""
    name = body["metadata"]["name"]
    template = copy.deepcopy(spec.trial.template)
    meta = template.get("metadata") or {}
    labels = {
        **(meta.get("labels") or {}),
        LABEL_SWEEP: name,
        LABEL_TRIAL: launch.trial,
        LABEL_ATTEMPT: str(launch.attempt),
    }
    pod_spec = template["spec"]
    pod_spec["restartPolicy"] = "Never"
    for container in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        _quantities_as_strings(container)
    trainer = pod_spec["containers"][0]
    termination_path = trainer.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    contract = contract_env(
        launch,
        sweep=name,
        metrics_port=spec.trial.metricsPort,
        termination_path=termination_path,
        gate_timeout=gate_timeout,
        checkpoint_dir=trial_checkpoint_dir(body, spec, launch.trial),
        checkpoint_every=spec.trial.checkpointEvery,
    )
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in contract.items()]
    # Bind the metrics endpoint to the pod's own address.
    env.append(
        {
            "name": "LRSWEEP_METRICS_HOST",
            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
        }
    )
    ours = {e["name"] for e in env}
    # The user's own variables come after ours, so they can refer to them with $(VAR).
    env.extend(e for e in trainer.get("env") or [] if e.get("name") not in ours)
    trainer["env"] = env
    ports = trainer.setdefault("ports", [])
    if not any(p.get("containerPort") == spec.trial.metricsPort for p in ports):
        ports.append({"name": "metrics", "containerPort": spec.trial.metricsPort})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, launch.trial, launch.attempt),
            "namespace": body["metadata"].get("namespace", "default"),
            "labels": labels,
            "annotations": {
                **(meta.get("annotations") or {}),
                f"{api.GROUP}/learning-rate": repr(launch.learning_rate),
                f"{api.GROUP}/mode": launch.mode,
            },
            "ownerReferences": [owner_reference(body)],
        },
        "spec": pod_spec,
    }


def first_pods(sweep_doc: LRSweep, gate_timeout: float) -> list[dict[str, Any]]:
    """The pods the operator creates first for a new sweep, as it would create them.

    For `lrsweep render`, which has no cluster: without a uid in the document, the pods carry
    no ownerReferences (the operator sets them to the sweep's uid), and random search draws
    its rates from the sweep's name instead of its uid.
    """
    body = sweep_doc.model_dump(mode="json", exclude={"status"})
    uid = sweep_doc.metadata.uid
    decision = decide(Sweep(sweep_doc.spec, key=uid or sweep_doc.metadata.name), [])
    pods = []
    for launch in decision.launches:
        pod = build_trial_pod(body, sweep_doc.spec, launch, gate_timeout)
        if not uid:
            del pod["metadata"]["ownerReferences"]
        pods.append(pod)
    return pods


def build_result_configmap(body: Mapping[str, Any], status: LRSweepStatus) -> dict[str, Any]:
    """The winner, for other workloads to read (spec.output.configMap)."""
    spec = body["spec"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec["output"]["configMap"],
            "namespace": body["metadata"].get("namespace", "default"),
            "labels": {LABEL_SWEEP: body["metadata"]["name"]},
            "ownerReferences": [owner_reference(body)],
        },
        "data": {
            "learningRate": repr(status.bestLearningRate),
            "trial": str(status.bestTrial),
            "score": repr(status.bestScore),
            "result.json": json.dumps(status.model_dump(mode="json", exclude={"conditions"})),
        },
    }


def pod_key(pod: Mapping[str, Any]) -> tuple[str, int]:
    """A trial pod's (trial, attempt), from its labels."""
    return (
        ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_TRIAL, ""),
        attempt_of(pod),
    )


def attempt_of(pod: Mapping[str, Any]) -> int:
    """A trial pod's attempt, from its labels (-1: none readable)."""
    try:
        return int(pod["metadata"]["labels"][LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return -1
