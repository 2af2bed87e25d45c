"""Trials as Kubernetes Pods: pure builders, pod observation, and one reconcile of a sweep.

Builders (`pod_name`, `build_trial_pod`, `build_result_configmap`) return plain objects and
are unit-tested without a cluster. `reconcile` is the operator's whole loop body: read the
sweep and its pods, fold what they say into the engine's records, let the engine decide,
carry the decision out, and return the new status for one write.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import aiohttp
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lrsweep import api
from lrsweep.api import (
    LRSweep,
    LRSweepSpec,
    LRSweepStatus,
    Phase,
    SpecError,
    TrialPhase,
    parse_spec,
    status_fields,
)
from lrsweep.engine import conditions as cond
from lrsweep.engine.sweep import (
    Decision,
    Launch,
    Sweep,
    decide,
    range_result_from_status,
    update,
)
from lrsweep.engine.trials import (
    Observation,
    Outcome,
    ProcessState,
    TrialRecord,
    records_from_status,
)
from lrsweep.runtime.env import contract_env
from lrsweep.runtime.metrics import MetricsError, exit_observation, parse_metrics, parse_summary
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry

log = logging.getLogger(__name__)

LABEL_SWEEP = f"{api.GROUP}/sweep"
LABEL_TRIAL = f"{api.GROUP}/trial"
LABEL_ATTEMPT = f"{api.GROUP}/attempt"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
T = TypeVar("T")


# --- builders ------------------------------------------------------------------------------


def pod_name(sweep: str, trial: str, attempt: int) -> str:
    """Deterministic, so a restarted operator re-creating a pod gets AlreadyExists."""
    suffix = f"-{trial}-{attempt}"
    return sweep[: 63 - len(suffix)].rstrip("-.") + suffix


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


# --- the Kubernetes API, off the event loop --------------------------------------------------


@dataclass
class Cluster:
    """The API calls a reconcile makes; each runs in a worker thread."""

    core: client.CoreV1Api
    telemetry: Telemetry
    http: aiohttp.ClientSession | None = None

    async def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as err:
            self.telemetry.api_errors.labels(operation, str(err.status)).inc()
            raise

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

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> str | None:
        """Create a trial pod; return why the API refused it for good (None: created)."""
        # The client sends plain dicts as they are; its type stubs only name model classes.
        body: Any = pod
        try:
            await self._call("create_pod", lambda: self.core.create_namespaced_pod(namespace, body))
        except ApiException as err:
            if err.status == 409:  # AlreadyExists: created before a restart; that is success
                return None
            if err.status in (400, 403, 422):  # the pod itself is unacceptable: no retry helps
                return _api_message(err)
            raise
        except ValueError as err:  # the client's own validation of the body
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

    async def apply_configmap(self, namespace: str, cm: dict[str, Any]) -> None:
        name = cm["metadata"]["name"]
        body: Any = cm  # a plain dict, as in create_pod
        try:
            await self._call(
                "create_configmap", lambda: self.core.create_namespaced_config_map(namespace, body)
            )
        except ApiException as err:
            if err.status != 409:
                raise
            await self._call(
                "replace_configmap",
                lambda: self.core.replace_namespaced_config_map(name, namespace, body),
            )

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

    async def promote(self, url: str, timeout: float) -> None:
        """POST the go-ahead past a rung; a failure is retried by the next reconcile."""
        if self.http is None:
            self.http = aiohttp.ClientSession()
        try:
            async with self.http.post(url, timeout=aiohttp.ClientTimeout(total=timeout)):
                pass
        except (aiohttp.ClientError, TimeoutError):
            self.telemetry.scrape_failures.labels("promote").inc()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()


# --- one reconcile ----------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    """What a reconcile produced: the status to write and the events to post."""

    status: dict[str, Any] | None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


async def _observe(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    spec: LRSweepSpec,
    records: Sequence[TrialRecord],
    pods: Sequence[Mapping[str, Any]],
) -> tuple[list[Observation], list[str]]:
    """Observations of each launched trial's current attempt, and unschedulable reasons."""
    by_key = {
        (p["metadata"]["labels"].get(LABEL_TRIAL), _attempt_of(p)): p
        for p in pods
        if (p.get("metadata") or {}).get("labels")
    }
    observations: list[Observation] = []
    unschedulable: list[str] = []
    scrapes: list[tuple[TrialRecord, Awaitable[str | None]]] = []
    for r in records:
        if r.terminal or r.queued:
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
            url = f"http://{ip}:{spec.trial.metricsPort}/metrics"
            scrapes.append((r, cluster.scrape(url, settings.scrape_timeout)))
        else:
            why = unschedulable_reason(pod)
            if why:
                unschedulable.append(f"{r.id}: {why}")
            observations.append(
                Observation(r.id, r.attempts, ProcessState.PENDING, reason=why or "pod pending")
            )
    texts = await asyncio.gather(*(s for _, s in scrapes))
    for (r, _), text in zip(scrapes, texts, strict=True):
        reading = None
        if text is not None:
            try:
                reading = parse_metrics(text)
            except MetricsError:
                reading = None
        if reading is None:
            cluster.telemetry.scrape_failures.labels(namespace).inc()
            observations.append(Observation(r.id, r.attempts, ProcessState.RUNNING))
        else:
            observations.append(
                Observation(
                    r.id,
                    r.attempts,
                    ProcessState.RUNNING,
                    step=reading.step,
                    points=reading.points,
                    range_curve=reading.range_curve,
                )
            )
    return observations, unschedulable


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
    return ReconcileResult(status.model_dump(mode="json"), [("Warning", cond.INVALID_SPEC, error)])


async def reconcile(
    cluster: Cluster,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    now: str,
) -> ReconcileResult:
    """One pass over one sweep. Never raises for a bad spec; API errors propagate (retry)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta.get("namespace", "default")
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
    if previous.phase in (Phase.SUCCEEDED, Phase.FAILED):
        _record(cluster.telemetry, namespace, name, previous)  # also after a restart
        return ReconcileResult(None)

    sweep = Sweep(spec, key=meta.get("uid") or name)
    records = records_from_status(previous)
    pods = await cluster.list_pods(namespace, name)
    observations, unschedulable = await _observe(cluster, settings, namespace, spec, records, pods)
    for obs in observations:
        records = update(sweep, records, obs)
    decision = decide(sweep, records, range_result_from_status(previous.rangeTest))

    events: list[tuple[str, str, str]] = []
    for stop in decision.stops:
        r = next(x for x in decision.records if x.id == stop.trial)
        await cluster.delete_pod(
            namespace, pod_name(name, r.id, r.attempts), settings.stop_grace_seconds
        )
        events.append(("Normal", "TrialStopped", f"{stop.trial}: {stop.reason}"))
    ips = {
        (p["metadata"]["labels"].get(LABEL_TRIAL), _attempt_of(p)): ip
        for p in pods
        if (ip := (p.get("status") or {}).get("podIP")) and (p.get("metadata") or {}).get("labels")
    }
    await asyncio.gather(
        *(
            cluster.promote(
                f"http://{ip}:{spec.trial.metricsPort}/continue?step={p.rung}",
                settings.scrape_timeout,
            )
            for p in decision.promotions
            if (ip := ips.get((p.trial, p.attempt)))
        )
    )
    refused: list[Observation] = []
    for launch in decision.launches:
        pod = build_trial_pod(body, spec, launch, settings.gate_timeout)
        problem = await cluster.create_pod(namespace, pod)
        if problem is not None:
            why = f"the API server refused the trial pod: {problem}"
            refused.append(
                Observation(
                    launch.trial,
                    launch.attempt,
                    ProcessState.EXITED,
                    outcome=Outcome.FAILED,
                    reason=why,
                )
            )
            events.append(("Warning", "TrialRefused", f"{launch.trial}: {why}"))
            continue
        cluster.telemetry.launches.labels(namespace).inc()
        what = "range test" if launch.mode == "range-test" else f"rate {launch.learning_rate:g}"
        events.append(
            ("Normal", "TrialStarted", f"{launch.trial} attempt {launch.attempt}: {what}")
        )
    if refused:
        # Counted as failed attempts: retried, and a template that never yields a pod ends
        # the sweep like a trainer that never starts.
        records = list(decision.records)
        for obs in refused:
            records = update(sweep, records, obs)
        decision = replace(decision, records=tuple(records))
    status = _status(decision, previous, unschedulable, now, generation)
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
            await cluster.apply_configmap(namespace, build_result_configmap(body, status))
    _record(cluster.telemetry, namespace, name, status)
    new = status.model_dump(mode="json")
    if new == LRSweepStatus.model_validate(status_fields(status_in)).model_dump(mode="json"):
        return ReconcileResult(None, events)  # nothing learned: write nothing
    return ReconcileResult(new, events)


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
    """The sweep's phase and best result, as the operator's own metrics."""
    telemetry.record_sweep(namespace, name, status.phase.value, [p.value for p in Phase])
    if status.bestScore is not None and status.bestLearningRate is not None:
        telemetry.best_score.labels(namespace, name).set(status.bestScore)
        telemetry.best_rate.labels(namespace, name).set(status.bestLearningRate)


def _status(
    decision: Decision,
    previous: LRSweepStatus,
    unschedulable: Sequence[str],
    now: str,
    generation: int | None,
) -> LRSweepStatus:
    status = decision.status()
    status.startTime = previous.startTime or now
    status.observedGeneration = generation
    conds = previous.conditions
    if unschedulable:
        conds, _ = cond.set_condition(
            conds,
            cond.SCHEDULABLE,
            False,
            cond.UNSCHEDULABLE,
            "; ".join(unschedulable)[:1000],
            now=now,
            generation=generation,
        )
    elif any(c.type == cond.SCHEDULABLE for c in conds):
        conds, _ = cond.set_condition(
            conds, cond.SCHEDULABLE, True, cond.SCHEDULED, "", now=now, generation=generation
        )
    if status.phase is Phase.SUCCEEDED:
        status.completionTime = now
        conds, _ = cond.set_condition(
            conds,
            cond.COMPLETE,
            True,
            cond.GOAL_REACHED,
            status.message,
            now=now,
            generation=generation,
        )
        conds, _ = cond.set_condition(
            conds,
            cond.READY,
            True,
            cond.GOAL_REACHED,
            status.message,
            now=now,
            generation=generation,
        )
    elif status.phase is Phase.FAILED:
        status.completionTime = now
        conds, _ = cond.set_condition(
            conds,
            cond.FAILED,
            True,
            cond.NO_RESULT,
            status.message,
            now=now,
            generation=generation,
        )
        conds, _ = cond.set_condition(
            conds,
            cond.READY,
            False,
            cond.NO_RESULT,
            status.message,
            now=now,
            generation=generation,
        )
    else:
        conds, _ = cond.set_condition(
            conds,
            cond.READY,
            False,
            cond.RUNNING,
            status.message,
            now=now,
            generation=generation,
        )
    status.conditions = conds
    return status
