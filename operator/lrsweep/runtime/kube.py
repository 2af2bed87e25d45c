"""One reconcile of one sweep, the operator's whole loop body, and the status it writes.

`reconcile` reads the sweep and its pods, folds what they say into the engine's records, lets
the engine decide, carries the decision out (pods created, promoted, parked), and returns the
new status for one write, with the events to post and the deletions that wait for the write.

Pods are deleted only for what a *stored* status already says (a trial stopped, an attempt
failed, the sweep over): the deletion then always follows the write that records why, so a
reconcile that fails halfway, or a status write that fails, never leaves a trial whose pod
is gone while its status still says it runs (that would read as a lost pod, and relaunch it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lrsweep import contract
from lrsweep.api import (
    LRSweepStatus,
    Phase,
    SpecError,
    TrialPhase,
    parse_spec,
    status_fields,
)
from lrsweep.engine import conditions as cond
from lrsweep.engine.status import summarize
from lrsweep.engine.sweep import (
    Decision,
    Sweep,
    decide,
    park_waiting,
    range_result_from_status,
    update,
)
from lrsweep.engine.trials import Observation, records_from_status
from lrsweep.runtime.clock import parse_timestamp
from lrsweep.runtime.cluster import Cluster
from lrsweep.runtime.jsonsafe import json_safe
from lrsweep.runtime.metrics import failed_attempt
from lrsweep.runtime.observe import (
    discard_urls,
    launched_pods,
    leaving_pods,
    observe_trials,
    unwanted_pods,
)
from lrsweep.runtime.pods import (
    LABEL_TRIAL,
    attempt_of,
    build_result_configmap,
    build_trial_pod,
    pod_url,
)
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry

log = logging.getLogger(__name__)

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
            if not await delete_unwanted_pods(cluster, namespace, previous, pods, grace, discard):
                cluster.tidied.add(key)
        return ReconcileResult(None)

    sweep = Sweep(spec, key=meta.get("uid") or name)
    records = records_from_status(previous)
    pods = await cluster.trial_pods(namespace, name, launched_pods(previous))
    freeing = len(leaving_pods(previous, pods))
    # What the stored status decided: this reconcile's own stops wait for its status write.
    await delete_unwanted_pods(cluster, namespace, previous, pods, grace, discard)
    progress = {tid: t.progressTime for tid, t in previous.trials.items()}
    observations, unschedulable, not_starting = await observe_trials(
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
        (p["metadata"]["labels"].get(LABEL_TRIAL), attempt_of(p)): ip
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
        return await delete_unwanted_pods(cluster, namespace, status, pods, grace, discard)

    return ReconcileResult(new, events, dict(status_in), delete_unwanted)


async def delete_unwanted_pods(
    cluster: Cluster,
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
            and not await cluster.discard(namespace, urls[name], timeout=discard[1])
        ):
            tries = cluster.undiscarded[key] = cluster.undiscarded.get(key, 0) + 1
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
        cluster.undiscarded.pop(key, None)
        await cluster.delete_pod(namespace, name, grace)
    return waiting


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
        m
        for t in status.trials.values()
        if t.progressTime and (m := parse_timestamp(t.progressTime))
    ]
    if moments:
        telemetry.last_progress.labels(namespace, name).set(max(moments).timestamp())
    if status.bestScore is not None and status.bestLearningRate is not None:
        telemetry.best_score.labels(namespace, name).set(status.bestScore)
        telemetry.best_rate.labels(namespace, name).set(status.bestLearningRate)
