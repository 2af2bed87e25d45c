"""Trials as Kubernetes Pods: pure builders, pod observation, and one reconcile of a sweep.

Builders (`pod_name`, `build_trial_pod`, `build_result_configmap`) return plain objects and
are unit-tested without a cluster. `reconcile` is the operator's whole loop body: read the
sweep and its pods, fold what they say into the engine's records, let the engine decide,
carry the decision out, and return the new status for one write.

Pods are deleted only for what a *stored* status already says (a trial stopped, an attempt
failed, the sweep over): the deletion then always follows the write that records why, so a
reconcile that fails halfway, or a status write that fails, never leaves a trial whose pod
is gone while its status still says it runs (that would read as a lost pod, and relaunch it).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ipaddress
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import aiohttp
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lrsweep import api, contract
from lrsweep.api import (
    LRSweep,
    LRSweepSpec,
    LRSweepStatus,
    Phase,
    SpecError,
    TrialPhase,
    TrialStatus,
    parse_spec,
    status_fields,
)
from lrsweep.engine import conditions as cond
from lrsweep.engine.status import summarize
from lrsweep.engine.sweep import (
    Decision,
    Launch,
    Sweep,
    decide,
    park_waiting,
    range_result_from_status,
    update,
)
from lrsweep.engine.trials import TERMINAL as TERMINAL_TRIAL_PHASES
from lrsweep.engine.trials import (
    Observation,
    ProcessState,
    TrialRecord,
    records_from_status,
)
from lrsweep.runtime.env import contract_env
from lrsweep.runtime.jsonsafe import json_safe
from lrsweep.runtime.metrics import (
    MetricsError,
    Reading,
    exit_observation,
    failed_attempt,
    parse_metrics,
    parse_summary,
    running_observation,
    silent_reason,
    stalled_reason,
)
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry

log = logging.getLogger(__name__)

LABEL_SWEEP = f"{api.GROUP}/sweep"
LABEL_TRIAL = f"{api.GROUP}/trial"
LABEL_ATTEMPT = f"{api.GROUP}/attempt"
DEFAULT_TERMINATION_PATH = contract.DEFAULT_TERMINATION_PATH
# In the API server's 403 when a pod would exceed a namespace ResourceQuota ("pods "x" is
# forbidden: exceeded quota: gpus, requested: ..., used: ..., limited: ...").
QUOTA_EXCEEDED = "exceeded quota"
# In the scheduler's reasons for not placing a pod when the cluster lacks room for it (as
# opposed to a selector nothing matches): "0/3 nodes are available: 3 Insufficient
# nvidia.com/gpu", "Too many pods"; a namespace quota says QUOTA_EXCEEDED.
LACK_OF_ROOM = ("Insufficient ", "Too many pods", QUOTA_EXCEEDED)
# Event reason when a trial waiting at a rung is parked (its pod deleted) to make room.
TRIAL_PARKED = "TrialParked"
# Event reason when spec.output.configMap names a ConfigMap this sweep does not own.
OUTPUT_NOT_WRITTEN = "OutputNotWritten"
# Warning event reason when a sweep ends Failed (the message: why, as in its status).
SWEEP_FAILED = "SweepFailed"
# Reconciles that POST /discard to a decided trial's pod before deleting it without an answer.
DISCARD_TRIES = 3
# A sweep's pods are read from the operator's watch (`Cluster.pod_index`), and listed from
# the API server only this often, or when the watch lacks a pod the stored status expects:
# the watch could miss a deletion (a stream cut while the pod went), a LIST cannot.
RELIST_SECONDS = 60.0
T = TypeVar("T")


# --- builders ------------------------------------------------------------------------------


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


# --- observing pods ------------------------------------------------------------------------


def pod_key(pod: Mapping[str, Any]) -> tuple[str, int]:
    """A trial pod's (trial, attempt), from its labels."""
    return (
        ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_TRIAL, ""),
        _attempt_of(pod),
    )


def launched_pods(status: LRSweepStatus) -> set[tuple[str, int]]:
    """The (trial, attempt) pods a stored status says exist: the current attempt of each
    launched trial not yet decided, queued or parked (what a reconcile takes for lost when
    it finds none)."""
    return {
        (tid, t.attempts)
        for tid, t in status.trials.items()
        if t.attempts and not (t.phase in TERMINAL_TRIAL_PHASES or t.queued or t.parkedAt)
    }


def _attempt_of(pod: Mapping[str, Any]) -> int:
    try:
        return int(pod["metadata"]["labels"][LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return -1


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            return state  # type: ignore[no-any-return]
    return None


def unschedulable_reason(pod: Mapping[str, Any]) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "cannot be scheduled")
    return None


# Why the kubelet cannot start a container (containerStatuses[].state.waiting.reason).
# Not mended by waiting: the image reference does not parse (the same template gives every
# attempt the same one, so the trial fails at once), or the container's settings do not
# resolve (a ConfigMap or Secret key it needs is missing, runAsNonRoot with an image that runs
# as root; a new attempt's pod sees a ConfigMap or Secret created since, so it is retried).
FAIL_AT_ONCE = frozenset({"InvalidImageName", "CreateContainerConfigError"})
NEVER_RETRIED = frozenset({"InvalidImageName"})
# Often transient (a registry or runtime hiccup) but forever after a typo in the image name:
# the attempt fails once its pod has been scheduled for a grace period
# (`OperatorSettings.start_grace_seconds`, 300 s by default, by when the kubelet's own
# image-pull back-off reaches its 300 s cap) and the kubelet still cannot start it.
FAIL_AFTER_GRACE = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerError"})
# In ErrImagePull's message when the registry answered that the image is not there, or not
# for this pod (containerd's and Docker's words): no wait or retry mends that, so the
# attempt fails at once and the trial with it, saying so.
IMAGE_ABSENT = (
    "not found",
    "manifest unknown",
    "name unknown",
    "repository does not exist",
    "pull access denied",
    "unauthorized",
)


def cannot_start(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The kubelet's reason and message for the first container it cannot start."""
    status = pod.get("status") or {}
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAIL_AT_ONCE or reason in FAIL_AFTER_GRACE:
            return str(reason), str(waiting.get("message") or "")[:300]
    return None


def _timestamp(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _scheduled_at(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When the pod was bound to its node (else created): waiting for a GPU is not stuck."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (c.get("type"), c.get("status")) != ("PodScheduled", "True"):
            continue
        if (moment := _timestamp(c.get("lastTransitionTime"))) is not None:
            return moment
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return _timestamp(created) if created else None


def observe_stuck_pod(
    trial: str, attempt: int, pod: Mapping[str, Any], now: dt.datetime, grace: float
) -> Observation | None:
    """A pod whose container the kubelet cannot start: pending while it may still start,
    a failed attempt once it cannot (`FAIL_AT_ONCE`; `FAIL_AFTER_GRACE` after `grace`
    seconds scheduled). None: not stuck."""
    stuck = cannot_start(pod)
    if stuck is None:
        return None
    reason, message = stuck
    what = f"{reason}: {message}" if message else reason
    since = _scheduled_at(pod)
    waited = (now - since).total_seconds() if since is not None else 0.0
    absent = reason == "ErrImagePull" and any(m in message.lower() for m in IMAGE_ABSENT)
    if reason in FAIL_AT_ONCE or absent or waited > grace:
        if reason in FAIL_AFTER_GRACE and not absent:
            what = f"{what} (for over {grace:g} s)"
        return failed_attempt(trial, attempt, what, permanent=reason in NEVER_RETRIED or absent)
    return Observation(trial, attempt, ProcessState.PENDING, reason=what)


def _live(pod: Mapping[str, Any]) -> bool:
    """Not ended and not already being deleted."""
    ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    return not ended and not (pod.get("metadata") or {}).get("deletionTimestamp")


def unwanted_pods(status: LRSweepStatus, pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """The live pods a stored status no longer wants: every one when the sweep is over, else
    those of decided trials (stopped, diverged, ...) and of attempts it has moved past (failed:
    requeued or relaunched). A status written before a pod was created (the write of the
    reconcile that created it failed) has fewer attempts, never more, so it can only leave a
    pod too long, never delete a current one."""
    over = status.phase in (Phase.SUCCEEDED, Phase.FAILED)
    return [
        pod["metadata"]["name"]
        for pod in pods
        if _live(pod) and (over or _done_with(_trial_of(status, pod), _attempt_of(pod)))
    ]


def leaving_pods(status: LRSweepStatus, pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Pods on their way out, not yet ended: being deleted, or unwanted by the stored status
    (`unwanted_pods`: parked, stopped, moved past). They still hold what they were given,
    and free it soon."""
    unwanted = set(unwanted_pods(status, pods))
    return [
        pod["metadata"]["name"]
        for pod in pods
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and (
            (pod.get("metadata") or {}).get("deletionTimestamp")
            or pod["metadata"]["name"] in unwanted
        )
    ]


def discard_urls(
    status: LRSweepStatus, pods: Sequence[Mapping[str, Any]], port: int
) -> dict[str, str]:
    """By pod name, for pods whose trial no attempt will go on from (the sweep is over, or
    the trial decided): the URL that tells the trainer to keep no checkpoint
    (docs/contract.md, "Checkpoints"). Not a pod of an attempt moved past: its trial's next
    attempt goes on from the checkpoint they share."""
    over = status.phase in (Phase.SUCCEEDED, Phase.FAILED)
    urls = {}
    for pod in pods:
        trial = _trial_of(status, pod)
        ip = (pod.get("status") or {}).get("podIP")
        if ip and (over or (trial is not None and trial.phase in TERMINAL_TRIAL_PHASES)):
            urls[pod["metadata"]["name"]] = pod_url(ip, port, contract.DISCARD_PATH)
    return urls


def _trial_of(status: LRSweepStatus, pod: Mapping[str, Any]) -> TrialStatus | None:
    """The status of the trial a pod runs (None: one this status does not know)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return status.trials.get(labels.get(LABEL_TRIAL, ""))


def _done_with(trial: TrialStatus | None, attempt: int) -> bool:
    """The status has decided the trial, or moved past this attempt of it (it failed)."""
    if trial is None:  # a trial this status does not know yet: left alone
        return False
    if trial.phase in TERMINAL_TRIAL_PHASES:
        return True
    return attempt < trial.attempts or (
        attempt == trial.attempts and (trial.queued or trial.parkedAt > 0)
    )


def observe_ended_pod(trial: str, attempt: int, pod: Mapping[str, Any]) -> Observation:
    """What a Succeeded or Failed pod says: its termination message first, then exit code."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        why = status.get("message") or "the pod was evicted"
        return Observation(trial, attempt, ProcessState.LOST, reason=f"evicted: {why}")
    terminated = _terminated(pod) or {}
    code = terminated.get("exitCode")
    message = terminated.get("message") or ""
    summary = None
    if message:
        try:
            summary = parse_summary(message)
        except ValueError:
            summary = None
    detail = message.strip().splitlines()[-1][:300] if message and summary is None else ""
    return exit_observation(
        trial,
        attempt,
        code,
        summary,
        detail=detail,
        missing="ended without a summary in its termination message",
    )


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{err.status} {err.reason}"


def _body_problems(err: ValidationError) -> str:
    """The client's validation errors of a request body, as Kubernetes names fields:
    `spec.containers[0].comand: unknown field`."""

    def path(loc: tuple[int | str, ...]) -> str:
        parts = loc[1:]  # loc[0] is the body's position among the call's arguments
        text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
        return text.lstrip(".") or "the pod"

    return "; ".join(
        f"{path(e['loc'])}: "
        + ("unknown field" if e["type"] == "extra_forbidden" else str(e["msg"]))
        for e in err.errors()
    )


# --- the Kubernetes API, off the event loop --------------------------------------------------


@dataclass
class ApiHealth:
    """Whether the API server answers: since when it has not, and the last failure."""

    clock: Callable[[], float] = time.monotonic
    failing_since: float | None = None
    last_failure: str = ""

    def answered(self) -> None:
        self.failing_since = None

    def failed(self, what: str) -> None:
        if self.failing_since is None:
            self.failing_since = self.clock()
        self.last_failure = what

    def report(self) -> str:
        if self.failing_since is None:
            return "ok"
        return (
            f"failing for {self.clock() - self.failing_since:.0f} s "
            f"(last: {self.last_failure}); retrying with backoff"
        )


@dataclass
class Cluster:
    """The API calls a reconcile makes; each runs in a worker thread."""

    core: client.CoreV1Api
    telemetry: Telemetry
    http: aiohttp.ClientSession | None = None
    # Finished sweeps (by uid) whose leftover pods this process has deleted: a finished sweep's
    # pods are listed once per operator process (after a restart too), not at every tick.
    tidied: set[str] = field(default_factory=set)
    # Pods ("namespace/name") whose trainer did not answer a POST /discard: how many times.
    # Such a pod is left running for the next reconcile to ask again (DISCARD_TRIES in all).
    undiscarded: dict[str, int] = field(default_factory=dict)
    # Reconciles under way: `close` lets them end before it closes the HTTP session.
    reconciling: int = 0
    # How the API server has answered lately, for /healthz.
    health: ApiHealth = field(default_factory=ApiHealth)
    # The trial pods of a sweep (namespace, name) as the operator's watch last saw them, once
    # `pods_indexed` says the watch has listed them all; None: list them every time.
    pod_index: Callable[[str, str], Sequence[Mapping[str, Any]]] | None = None
    pods_indexed: bool = False
    # When each sweep's pods were last listed from the API server (time.monotonic).
    listed: dict[tuple[str, str], float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    async def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            result = await asyncio.to_thread(fn)
        except ApiException as err:
            self.telemetry.api_errors.labels(operation, str(err.status)).inc()
            if err.status is None or err.status >= 500 or err.status == 429:
                self.health.failed(f"{operation}: {err.status} {err.reason}")
            else:  # the server answered; the request was wrong
                self.health.answered()
            raise
        except urllib3.exceptions.HTTPError as err:  # no answer at all: refused, reset, timeout
            self.telemetry.api_errors.labels(operation, "none").inc()
            self.health.failed(f"{operation}: {type(err).__name__}")
            raise
        self.health.answered()
        return result

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str | None:
        """Merge `patch` into the sweep's status; return the sweep's resourceVersion after it
        (None: deleted meanwhile, nothing written)."""
        custom = client.CustomObjectsApi(self.core.api_client)
        body: Any = {"status": patch}
        try:
            written = await self._call(
                "patch_status",
                lambda: custom.patch_namespaced_custom_object_status(
                    api.GROUP, api.VERSION, namespace, api.PLURAL, name, body
                ),
            )
        except ApiException as err:
            if err.status != 404:
                raise
            return None
        version = (
            written.get("metadata", {}).get("resourceVersion")
            if isinstance(written, dict)
            else None
        )
        return str(version) if version is not None else None

    async def drop_finalizer(self, sweep: Mapping[str, Any], finalizer: str) -> None:
        """Remove `finalizer` from the sweep, as of the version read: a sweep changed since is
        a 409, and the next reconcile tries again."""
        meta = sweep["metadata"]
        custom = client.CustomObjectsApi(self.core.api_client)
        body: Any = {
            "metadata": {
                "finalizers": [f for f in meta.get("finalizers") or [] if f != finalizer],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        try:
            await self._call(
                "patch_sweep",
                lambda: custom.patch_namespaced_custom_object(
                    api.GROUP,
                    api.VERSION,
                    meta.get("namespace", "default"),
                    api.PLURAL,
                    meta["name"],
                    body,
                ),
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    async def post_event(
        self, sweep: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        """An Event about the sweep, as `kubectl describe lrs` shows them."""
        meta = sweep["metadata"]
        namespace = meta.get("namespace", "default")
        body: Any = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": sweep.get("apiVersion", f"{api.GROUP}/{api.VERSION}"),
                "kind": sweep.get("kind", api.KIND),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "lrsweep"},
            "reportingComponent": "lrsweep",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call("create_event", lambda: self.core.create_namespaced_event(namespace, body))

    async def trial_pods(
        self, namespace: str, sweep: str, expected: Collection[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """The sweep's trial pods: from the watch when it holds each (trial, attempt) pod of
        `expected` (those the stored status says exist) and the last LIST is recent, else
        listed. A pod created since the watch's last event is one it lacks, so a reconcile
        never takes a pod the watch has not seen yet for lost."""
        key = (namespace, sweep)
        if (
            self.pod_index is not None
            and self.pods_indexed
            and self.clock() - self.listed.get(key, -math.inf) < RELIST_SECONDS
        ):
            watched = [dict(p) for p in self.pod_index(namespace, sweep)]
            if set(expected) <= {pod_key(p) for p in watched}:
                return watched
        listed_at = self.clock()
        listed = await self.list_pods(namespace, sweep)
        self.listed[key] = listed_at
        return listed

    async def list_pods(self, namespace: str, sweep: str) -> list[dict[str, Any]]:
        result = await self._call(
            "list_pods",
            lambda: self.core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_SWEEP}={sweep}"
            ),
        )
        # Plain dicts with the API's camelCase names, like everything else we handle.
        plain: dict[str, Any] = self.core.api_client.sanitize_for_serialization(result)
        items: list[dict[str, Any]] = plain.get("items") or []
        return items

    async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The LRSweep as stored now (None: deleted)."""
        custom = client.CustomObjectsApi(self.core.api_client)
        try:
            found = await self._call(
                "read_sweep",
                lambda: custom.get_namespaced_custom_object(
                    api.GROUP, api.VERSION, namespace, api.PLURAL, name
                ),
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(found, dict):  # the client returns the JSON it was sent as a dict
            raise TypeError(f"the API server answered a GET of LRSweep {name} with {found!r}")
        return found

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> str | None:
        """Create a trial pod; return why the API refused it for good (None: created)."""
        # The client sends plain dicts as they are; its type stubs only name model classes.
        body: Any = pod
        try:
            # Strict: a misspelt field in the user's template (`comand:`) is refused, naming
            # it, instead of dropped, which would run the image's default command unnoticed.
            await self._call(
                "create_pod",
                lambda: self.core.create_namespaced_pod(namespace, body, field_validation="Strict"),
            )
        except ApiException as err:
            if err.status == 409:  # AlreadyExists: created before a restart; that is success
                return None
            if err.status in (400, 403, 422):  # the pod itself is unacceptable: no retry helps
                return _api_message(err)
            raise
        except ValidationError as err:  # the client's own validation of the body
            return _body_problems(err)
        except ValueError as err:
            return str(err).splitlines()[0]
        return None

    async def delete_pod(self, namespace: str, name: str, grace: int) -> None:
        try:
            await self._call(
                "delete_pod",
                lambda: self.core.delete_namespaced_pod(
                    name, namespace, grace_period_seconds=grace
                ),
            )
        except ApiException as err:
            if err.status != 404:
                raise

    async def apply_configmap(self, namespace: str, cm: dict[str, Any]) -> str | None:
        """Create the result ConfigMap, or update the one this sweep owns; return why a
        ConfigMap of that name was left alone (None: written).

        One the sweep does not own (the user's, another sweep's) is never replaced: that would
        make this sweep its owner, and deleting the sweep would then delete it."""
        name = cm["metadata"]["name"]
        body: Any = cm  # a plain dict, as in create_pod
        try:
            await self._call(
                "create_configmap", lambda: self.core.create_namespaced_config_map(namespace, body)
            )
            return None
        except ApiException as err:
            if err.status != 409:
                raise
        read = await self._call(
            "read_configmap", lambda: self.core.read_namespaced_config_map(name, namespace)
        )
        existing: dict[str, Any] = self.core.api_client.sanitize_for_serialization(read)
        ours = {owner["uid"] for owner in cm["metadata"]["ownerReferences"]}
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(owner.get("uid") in ours for owner in owners):
            return f'ConfigMap "{name}" exists and is not owned by this sweep; left unchanged'
        # The version read: a ConfigMap changed since is a 409, and the next reconcile retries.
        meta = {**cm["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]}
        body = {**cm, "metadata": meta}
        await self._call(
            "replace_configmap",
            lambda: self.core.replace_namespaced_config_map(name, namespace, body),
        )
        return None

    async def scrape(self, url: str, timeout: float) -> str | None:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status != 200:
                    return None
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def promote(self, namespace: str, url: str, timeout: float) -> None:
        """POST the go-ahead past a rung; a failure is retried by the next reconcile."""
        await self._post(namespace, url, timeout)

    async def discard(self, namespace: str, url: str, timeout: float) -> bool:
        """POST that a trial keeps no checkpoint; True once the trainer has deleted it."""
        return await self._post(namespace, url, timeout)

    async def _post(self, namespace: str, url: str, timeout: float) -> bool:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        try:
            async with self.http.post(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status < 300:
                    return True
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            problem = str(err) or type(err).__name__
        log.debug("POST %s failed: %s", url, problem)
        self.telemetry.post_failures.labels(namespace).inc()
        return False

    async def delete_unwanted_pods(
        self,
        namespace: str,
        status: LRSweepStatus,
        pods: Sequence[Mapping[str, Any]],
        grace: int,
        discard: tuple[int, float] | None = None,
    ) -> list[str]:
        """Delete the pods a stored status no longer wants (`unwanted_pods`). With `discard`
        (the trials' metrics port and a timeout: the sweep keeps checkpoints), first tell
        those of decided trials to delete their checkpoints. A trainer that does not answer
        (busy, or not serving yet) is asked again by the next reconcile, and its pod left
        until then, DISCARD_TRIES times in all before it is deleted anyway, its checkpoint
        kept. Returns the pods left for the next reconcile."""
        urls = discard_urls(status, pods, discard[0]) if discard else {}
        waiting = []
        for name in unwanted_pods(status, pods):
            key = f"{namespace}/{name}"
            if (
                discard
                and name in urls
                and not await self.discard(namespace, urls[name], timeout=discard[1])
            ):
                tries = self.undiscarded[key] = self.undiscarded.get(key, 0) + 1
                if tries < DISCARD_TRIES:
                    log.info("pod %s did not answer POST /discard; asking again", key)
                    waiting.append(name)
                    continue
                log.warning(
                    "pod %s did not answer %d requests to discard its checkpoint; deleting "
                    "it, its checkpoint left on the volume",
                    key,
                    tries,
                )
            self.undiscarded.pop(key, None)
            await self.delete_pod(namespace, name, grace)
        return waiting

    async def close(self, timeout: float = 10.0) -> None:
        """Close the HTTP session, once the reconciles under way have ended (for at most
        `timeout` seconds): kopf leaves a timer that is still running when the operator stops
        to finish on its own, after the cleanup handlers that call this."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.reconciling and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self.http is not None:
            await self.http.close()


# --- one reconcile ----------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    """What a reconcile produced: the status to write and the events to post, and the
    stored status it started from (what a patch to `status` is computed against)."""

    status: dict[str, Any] | None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    stored: dict[str, Any] = field(default_factory=dict)
    # Deletes the pods the new status no longer wants (stopped, parked, moved past): to be
    # awaited once that status is written, which is what lets it delete them.
    after_write: Callable[[], Awaitable[object]] | None = None


async def _observe(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    name: str,
    spec: LRSweepSpec,
    records: Sequence[TrialRecord],
    pods: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    progress: Mapping[str, str],
) -> tuple[list[Observation], list[str], list[str]]:
    """Observations of each launched trial's current attempt (of sweep `name`), why pods
    cannot be scheduled, and why scheduled pods' containers cannot start. `progress`: each
    trial's stored progressTime (`stamp_progress`)."""
    by_key = {
        (p["metadata"]["labels"].get(LABEL_TRIAL), _attempt_of(p)): p
        for p in pods
        if (p.get("metadata") or {}).get("labels")
    }
    observations: list[Observation] = []
    unschedulable: list[str] = []
    not_starting: list[str] = []
    scrapes: list[tuple[TrialRecord, Mapping[str, Any], str, Awaitable[str | None]]] = []
    for r in records:
        if r.terminal or r.queued or r.parked_at:
            continue
        pod = by_key.get((r.id, r.attempts))
        if pod is None:
            observations.append(
                Observation(r.id, r.attempts, ProcessState.LOST, reason="its pod was deleted")
            )
            continue
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            observations.append(observe_ended_pod(r.id, r.attempts, pod))
        elif (pod.get("metadata") or {}).get("deletionTimestamp"):
            observations.append(
                Observation(r.id, r.attempts, ProcessState.LOST, reason="its pod is being deleted")
            )
        elif phase == "Running" and (ip := (pod.get("status") or {}).get("podIP")):
            url = pod_url(ip, spec.trial.metricsPort, contract.HISTORY_PATH)
            scrapes.append((r, pod, url, cluster.scrape(url, settings.scrape_timeout)))
        elif (
            stuck := observe_stuck_pod(r.id, r.attempts, pod, now, settings.start_grace_seconds)
        ) is not None:
            not_starting.append(f"{r.id}: {stuck.reason}")
            observations.append(stuck)
        else:
            why = unschedulable_reason(pod)
            if why:
                unschedulable.append(f"{r.id}: {why}")
            observations.append(
                Observation(r.id, r.attempts, ProcessState.PENDING, reason=why or "pod pending")
            )
    texts = await asyncio.gather(*(s for *_, s in scrapes))
    for (r, pod, url, _), text in zip(scrapes, texts, strict=True):
        reading = None
        if text is not None:
            try:
                reading = parse_metrics(text, {"sweep": name, "trial": r.id})
            except MetricsError as err:
                log.debug("%s/%s %s: %s", namespace, name, r.id, err)
                reading = None
        if reading is None:
            cluster.telemetry.scrape_failures.labels(namespace).inc()
            silent = observe_silent_pod(r, pod, url, now, settings.start_grace_seconds)
            if silent is not None:
                observations.append(silent)
                continue
        stalled = observe_stalled(
            r, reading, progress.get(r.id, ""), now, settings.progress_deadline_seconds
        )
        if stalled is not None:
            observations.append(stalled)
            continue
        observations.append(running_observation(r.id, r.attempts, reading))
    return observations, unschedulable, not_starting


def observe_stalled(
    record: TrialRecord, reading: Reading | None, since: str, now: dt.datetime, deadline: float
) -> Observation | None:
    """A running trial whose step has stood still since `since` (its stored progressTime)
    for over `deadline` seconds: a failed attempt (retried as usual). None while it moves."""
    moment = _timestamp(since) if since else None
    if moment is None or (now - moment).total_seconds() <= deadline:
        return None
    if reading is not None and reading.furthest_step > record.step:
        return None  # it moved since the stored status
    return failed_attempt(record.id, record.attempts, stalled_reason(record.step, deadline))


def stamp_progress(status: LRSweepStatus, previous: LRSweepStatus, now: str) -> None:
    """Set each trial's progressTime: `now` where its step, attempt or queueing changed since
    `previous` (or it has none yet), else what `previous` says."""
    for tid, trial in status.trials.items():
        before = previous.trials.get(tid)
        kept = before.progressTime if before is not None else ""
        if before is None or (before.step, before.attempts, before.queued) != (
            trial.step,
            trial.attempts,
            trial.queued,
        ):
            kept = ""  # it moved
        trial.progressTime = kept or now


def _started_at(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When the pod's first container started running."""
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if moment := _timestamp(((c.get("state") or {}).get("running") or {}).get("startedAt")):
            return moment
    return None


def observe_silent_pod(
    record: TrialRecord, pod: Mapping[str, Any], url: str, now: dt.datetime, grace: float
) -> Observation | None:
    """A running trial that has never served readable metrics, `grace` seconds after its
    container started: a failed attempt (retried as usual), saying where it was asked.
    None while it may still start serving, or once it has (its evaluations are recorded)."""
    if record.step or record.points:
        return None
    started = _started_at(pod)
    if started is None or (now - started).total_seconds() <= grace:
        return None
    why = silent_reason(url, grace, ", and may the operator reach the pod (NetworkPolicy)")
    return failed_attempt(record.id, record.attempts, why)


def _invalid(
    status_in: Mapping[str, Any], error: str, now: str, generation: int | None
) -> ReconcileResult:
    status = LRSweepStatus.model_validate(status_fields(status_in))
    conditions, changed = cond.set_condition(
        status.conditions,
        cond.FAILED,
        True,
        cond.INVALID_SPEC,
        error,
        now=now,
        generation=generation,
    )
    if not changed and status.phase is Phase.FAILED:
        return ReconcileResult(None)
    conditions, _ = cond.set_condition(
        conditions, cond.READY, False, cond.INVALID_SPEC, error, now=now, generation=generation
    )
    status.phase = Phase.FAILED
    status.message = error
    status.conditions = conditions
    status.observedGeneration = generation
    status.completionTime = status.completionTime or now
    events = [("Warning", cond.INVALID_SPEC, error)]
    return ReconcileResult(status.model_dump(mode="json"), events, dict(status_in))


async def reconcile(
    cluster: Cluster,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    now: str,
    *,
    current: bool = False,
) -> ReconcileResult:
    """One pass over one sweep (`_reconcile`), counted as under way while it runs.
    `current`: the caller knows `body` is the sweep as stored now (no read needed)."""
    cluster.reconciling += 1
    try:
        return await _reconcile(cluster, settings, body, now, current)
    finally:
        cluster.reconciling -= 1


async def _reconcile(
    cluster: Cluster,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    now: str,
    current: bool = False,
) -> ReconcileResult:
    """One pass over one sweep. Never raises for a bad spec; API errors propagate (retry).

    `body` is kopf's copy, from its watch: it can be older than the status the last reconcile
    wrote (a watch event late or lost), and a reconcile from an older status could undo what
    a newer one decided after acting on it (a stopped trial's pod deleted, then read as lost
    and relaunched). So a sweep not yet over is read afresh; a finished one never changes."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta.get("namespace", "default")
    if not current and (body.get("status") or {}).get("phase") not in (
        Phase.SUCCEEDED,
        Phase.FAILED,
    ):
        latest = await cluster.read_sweep(namespace, name)
        if latest is None:
            return ReconcileResult(None)  # deleted since kopf saw it
        body, meta = latest, latest["metadata"]
    generation = meta.get("generation")
    status_in = body.get("status") or {}
    try:
        spec = parse_spec(body.get("spec"))
    except SpecError as err:
        _record(cluster.telemetry, namespace, name, LRSweepStatus(phase=Phase.FAILED))
        return _invalid(status_in, str(err), now, generation)
    try:
        previous = LRSweepStatus.model_validate(status_fields(status_in))
    except ValueError:
        previous = LRSweepStatus()  # unreadable status: start over rather than crash
    grace = settings.stop_grace_seconds
    discard = (
        (spec.trial.metricsPort, settings.scrape_timeout) if spec.trial.checkpointDir else None
    )
    if previous.phase in (Phase.SUCCEEDED, Phase.FAILED):
        _record(cluster.telemetry, namespace, name, previous)  # also after a restart
        # Trials stopped by the reconcile that ended the sweep still have pods.
        key = meta.get("uid") or f"{namespace}/{name}"
        if key not in cluster.tidied:
            pods = await cluster.list_pods(namespace, name)
            if not await cluster.delete_unwanted_pods(namespace, previous, pods, grace, discard):
                cluster.tidied.add(key)
        return ReconcileResult(None)

    sweep = Sweep(spec, key=meta.get("uid") or name)
    records = records_from_status(previous)
    pods = await cluster.trial_pods(namespace, name, launched_pods(previous))
    freeing = len(leaving_pods(previous, pods))
    # What the stored status decided: this reconcile's own stops wait for its status write.
    await cluster.delete_unwanted_pods(namespace, previous, pods, grace, discard)
    progress = {tid: t.progressTime for tid, t in previous.trials.items()}
    observations, unschedulable, not_starting = await _observe(
        cluster,
        settings,
        namespace,
        name,
        spec,
        records,
        pods,
        dt.datetime.fromisoformat(now),
        progress,
    )
    for obs in observations:
        records = update(sweep, records, obs)
    decision = decide(sweep, records, range_result_from_status(previous.rangeTest))

    events = [("Normal", "TrialStopped", f"{stop.trial}: {stop.reason}") for stop in decision.stops]
    ips = {
        (p["metadata"]["labels"].get(LABEL_TRIAL), _attempt_of(p)): ip
        for p in pods
        if (ip := (p.get("status") or {}).get("podIP")) and (p.get("metadata") or {}).get("labels")
    }
    await asyncio.gather(
        *(
            cluster.promote(
                namespace,
                pod_url(ip, spec.trial.metricsPort, f"{contract.CONTINUE_PATH}?step={p.rung}"),
                settings.scrape_timeout,
            )
            for p in decision.promotions
            if (ip := ips.get((p.trial, p.attempt)))
        )
    )
    refused: list[Observation] = []
    over_quota: dict[str, str] = {}
    for launch in decision.launches:
        pod = build_trial_pod(body, spec, launch, settings.gate_timeout)
        problem = await cluster.create_pod(namespace, pod)
        if problem is not None and QUOTA_EXCEEDED in problem:
            over_quota[launch.trial] = problem
            unschedulable.append(f"{launch.trial}: {problem}")
            continue
        if problem is not None:
            why = f"the trial pod was refused: {problem}"
            refused.append(failed_attempt(launch.trial, launch.attempt, why))
            events.append(("Warning", "TrialRefused", f"{launch.trial}: {why}"))
            continue
        cluster.telemetry.launches.labels(namespace).inc()
        what = "range test" if launch.mode == "range-test" else f"rate {launch.learning_rate:g}"
        events.append(
            ("Normal", "TrialStarted", f"{launch.trial} attempt {launch.attempt}: {what}")
        )
    if over_quota:
        # A namespace ResourceQuota is full (GPUs, pods): the pod may fit once other pods end,
        # as a pod the scheduler cannot place yet would. Not launched, then: the trial stays
        # queued as it was, its attempt not counted, and is launched again next time.
        decision = replace(
            decision,
            records=tuple(
                replace(
                    r,
                    attempts=r.attempts - 1,
                    queued=True,
                    reason=f"waiting for the namespace quota: {over_quota[r.id]}",
                )
                if r.id in over_quota
                else r
                for r in decision.records
            ),
        )
    # Trials the cluster has no room for while others wait at rungs holding theirs (GPUs):
    # park that many waiting trials, less the pods on their way out (they make room soon).
    short = sum(1 for why in unschedulable if any(m in why for m in LACK_OF_ROOM)) - freeing
    if short > 0:
        parked = decision
        decision = park_waiting(sweep, decision, short)
        for prior, record in zip(parked.records, decision.records, strict=True):
            if record.parked_at and not prior.parked_at:
                events.append(("Normal", TRIAL_PARKED, f"{record.id}: {record.reason}"))
    if refused:
        # Counted as failed attempts: retried, and a template that never yields a pod ends
        # the sweep like a trainer that never starts.
        records = list(decision.records)
        for obs in refused:
            records = update(sweep, records, obs)
        decision = replace(decision, records=tuple(records))
    status = sweep_status(decision, previous, unschedulable, not_starting, now, generation)
    stamp_progress(status, previous, now)
    for r in decision.records:
        before = previous.trials.get(r.id)
        if r.terminal and (before is None or before.phase is not r.phase):
            cluster.telemetry.trials.labels(namespace, r.phase.value, r.verdict.value).inc()
            if r.phase is TrialPhase.FAILED:
                events.append(("Warning", "TrialFailed", f"{r.id}: {r.reason}"))
    if decision.done and status.phase is Phase.SUCCEEDED:
        events.append(
            (
                "Normal",
                "BestRateFound",
                f"best learning rate {status.bestLearningRate:g} ({status.bestTrial})",
            )
        )
        if spec.output.configMap:
            problem = await cluster.apply_configmap(namespace, build_result_configmap(body, status))
            if problem is not None:
                events.append(("Warning", OUTPUT_NOT_WRITTEN, f"spec.output.configMap: {problem}"))
                message = f"{decision.message}; spec.output.configMap: {problem}"
                decision = replace(decision, message=message)
                status = sweep_status(
                    decision, previous, unschedulable, not_starting, now, generation
                )
                stamp_progress(status, previous, now)
    if decision.done and status.phase is Phase.FAILED:
        events.append(("Warning", SWEEP_FAILED, status.message))
    _record(cluster.telemetry, namespace, name, status)
    new = status.model_dump(mode="json")
    if new == LRSweepStatus.model_validate(status_fields(status_in)).model_dump(mode="json"):
        return ReconcileResult(None, events, dict(status_in))  # nothing learned: write nothing

    async def delete_unwanted() -> object:
        return await cluster.delete_unwanted_pods(namespace, status, pods, grace, discard)

    return ReconcileResult(new, events, dict(status_in), delete_unwanted)


def status_patch(stored: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386, what kopf sends) that turns the `stored` status into
    `status`: a key `status` no longer has below its top level is set to None, which deletes
    it. Merging `status` alone would keep them: the rungs of a retried trial, for one.
    Top-level keys `status` does not name (kopf's own, say) are left alone."""

    def diff(old: Any, new: Any) -> Any:
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            return new
        patch = {key: diff(old.get(key), value) for key, value in new.items()}
        patch.update({key: None for key in old if key not in new})
        return patch

    return {key: diff(stored.get(key), value) for key, value in status.items()}


def _record(telemetry: Telemetry, namespace: str, name: str, status: LRSweepStatus) -> None:
    """The sweep's phase, best result and last progress, as the operator's own metrics."""
    telemetry.record_sweep(namespace, name, status.phase.value, [p.value for p in Phase])
    moments = [
        m for t in status.trials.values() if t.progressTime and (m := _timestamp(t.progressTime))
    ]
    if moments:
        telemetry.last_progress.labels(namespace, name).set(max(moments).timestamp())
    if status.bestScore is not None and status.bestLearningRate is not None:
        telemetry.best_score.labels(namespace, name).set(status.bestScore)
        telemetry.best_rate.labels(namespace, name).set(status.bestLearningRate)


def sweep_status(
    decision: Decision,
    previous: LRSweepStatus,
    unschedulable: Sequence[str],
    not_starting: Sequence[str],
    now: str,
    generation: int | None,
) -> LRSweepStatus:
    """The status to write (`engine.status.summarize`), JSON-safe (`json_safe`)."""
    status = summarize(
        decision, previous, unschedulable, not_starting, now=now, generation=generation
    )
    return LRSweepStatus.model_validate(json_safe(status.model_dump(mode="json")))
