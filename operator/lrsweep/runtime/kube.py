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
    LRSweepSpec,
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
    Launch,
    Promote,
    Sweep,
    decide,
    park_waiting,
    range_result_from_status,
    update,
)
from lrsweep.engine.trials import Observation, TrialRecord, records_from_status
from lrsweep.runtime.clock import parse_timestamp
from lrsweep.runtime.cluster import EVENT_MESSAGE_LIMIT, Cluster
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


Event = tuple[str, str, str]  # (type, reason, message)


@dataclass
class ReconcileResult:
    """What a reconcile produced: the status to write and the events to post, and the
    stored status it started from (what a patch to `status` is computed against)."""

    status: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
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
    status_in = body.get("status") or {}
    try:
        spec = parse_spec(body.get("spec"))
    except SpecError as err:
        _record(cluster.telemetry, namespace, name, LRSweepStatus(phase=Phase.FAILED))
        return _invalid(status_in, str(err), now, meta.get("generation"))
    try:
        previous = LRSweepStatus.model_validate(status_fields(status_in))
    except ValueError:
        previous = LRSweepStatus()  # unreadable status: start over rather than crash
    if previous.phase in (Phase.SUCCEEDED, Phase.FAILED):
        _record(cluster.telemetry, namespace, name, previous)  # also after a restart
        await _tidy(cluster, settings, body, spec, previous)
        return ReconcileResult(None)
    return await _advance(cluster, settings, body, spec, previous, now)


async def _advance(
    cluster: Cluster,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    spec: LRSweepSpec,
    previous: LRSweepStatus,
    now: str,
) -> ReconcileResult:
    """One tick of a sweep not yet over, from its stored status `previous`: observe its
    pods, decide, act on the decision, and return the status to write."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta.get("namespace", "default")
    generation = meta.get("generation")
    status_in = body.get("status") or {}
    sweep = Sweep(spec, key=meta.get("uid") or name)
    pods = await cluster.trial_pods(namespace, name, launched_pods(previous))
    freeing = len(leaving_pods(previous, pods))
    # What the stored status decided: this reconcile's own stops wait for its status write.
    await delete_unwanted_pods(cluster, settings, namespace, spec, previous, pods)
    records = records_from_status(previous)
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
    records = _fold(sweep, records, observations)
    decision = decide(sweep, records, range_result_from_status(previous.rangeTest))

    events = [("Normal", "TrialStopped", f"{stop.trial}: {stop.reason}") for stop in decision.stops]
    await _promote(cluster, settings, namespace, spec, decision.promotions, pods)
    launched = await _launch(cluster, settings, namespace, body, spec, decision.launches)
    events += launched.events
    unschedulable += [f"{trial}: {problem}" for trial, problem in launched.over_quota]
    decision = _requeue(decision, dict(launched.over_quota))
    decision, parked = _park(sweep, decision, unschedulable, freeing)
    events += parked
    if launched.refused:
        # Counted as failed attempts: retried, and a template that never yields a pod ends
        # the sweep like a trainer that never starts.
        decision = replace(
            decision, records=tuple(_fold(sweep, decision.records, launched.refused))
        )
    status = sweep_status(decision, previous, unschedulable, not_starting, now, generation)
    stamp_progress(status, previous, now)
    events += _newly_decided(cluster.telemetry, namespace, decision, previous)
    if decision.done and status.phase is Phase.SUCCEEDED:
        best = f"best learning rate {status.bestLearningRate:g} ({status.bestTrial})"
        events.append(("Normal", "BestRateFound", best))
        problem = await _write_output(cluster, namespace, body, spec, status)
        if problem is not None:
            events.append(("Warning", OUTPUT_NOT_WRITTEN, f"spec.output.configMap: {problem}"))
            message = f"{decision.message}; spec.output.configMap: {problem}"
            decision = replace(decision, message=message)
            status = sweep_status(decision, previous, unschedulable, not_starting, now, generation)
            stamp_progress(status, previous, now)
    if decision.done and status.phase is Phase.FAILED:
        events.append(("Warning", SWEEP_FAILED, status.message))
    _record(cluster.telemetry, namespace, name, status)
    new, old = status.model_dump(mode="json"), previous.model_dump(mode="json")
    if new == old:
        return ReconcileResult(None, events, dict(status_in))  # nothing learned: write nothing
    if progress_only(old, new) and not _progress_due(previous, now, settings):
        return ReconcileResult(None, events, dict(status_in))  # written with a later one

    async def delete_unwanted() -> object:
        return await delete_unwanted_pods(cluster, settings, namespace, spec, status, pods)

    return ReconcileResult(new, events, dict(status_in), delete_unwanted)


def _fold(
    sweep: Sweep, records: Sequence[TrialRecord], observations: Sequence[Observation]
) -> list[TrialRecord]:
    """The records with each observation folded in, in order (`engine.sweep.update`)."""
    folded = list(records)
    for obs in observations:
        folded = update(sweep, folded, obs)
    return folded


async def _promote(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    spec: LRSweepSpec,
    promotions: Sequence[Promote],
    pods: Sequence[Mapping[str, Any]],
) -> None:
    """Tell each promoted trial's pod that it goes on past its rung (a pod without an
    address yet is told by a later reconcile)."""
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
            for p in promotions
            if (ip := ips.get((p.trial, p.attempt)))
        )
    )


@dataclass
class _Launched:
    """What creating a decision's trial pods came to."""

    events: list[Event] = field(default_factory=list)
    # Attempts whose pod the API refused for good, as failed attempts.
    refused: list[Observation] = field(default_factory=list)
    # (trial, the API's message) for pods a full namespace ResourceQuota refused.
    over_quota: list[tuple[str, str]] = field(default_factory=list)


async def _launch(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    body: Mapping[str, Any],
    spec: LRSweepSpec,
    launches: Sequence[Launch],
) -> _Launched:
    """Create the pod of each launch."""
    launched = _Launched()
    for launch in launches:
        pod = build_trial_pod(body, spec, launch, settings.gate_timeout)
        problem = await cluster.create_pod(namespace, pod)
        if problem is not None and QUOTA_EXCEEDED in problem:
            launched.over_quota.append((launch.trial, problem))
            continue
        if problem is not None:
            why = f"the trial pod was refused: {problem}"
            launched.refused.append(failed_attempt(launch.trial, launch.attempt, why))
            launched.events.append(("Warning", "TrialRefused", f"{launch.trial}: {why}"))
            continue
        cluster.telemetry.launches.labels(namespace).inc()
        what = "range test" if launch.mode == "range-test" else f"rate {launch.learning_rate:g}"
        launched.events.append(
            ("Normal", "TrialStarted", f"{launch.trial} attempt {launch.attempt}: {what}")
        )
    return launched


def _requeue(decision: Decision, over_quota: Mapping[str, str]) -> Decision:
    """The trials whose pods a full namespace ResourceQuota (GPUs, pods) refused, by the API's
    message. A pod may fit once other pods end, as a pod the scheduler cannot place yet would:
    not launched, then; each trial stays queued as it was, its attempt not counted, and is
    launched again next time."""
    if not over_quota:
        return decision
    return replace(
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


def _park(
    sweep: Sweep, decision: Decision, unschedulable: Sequence[str], freeing: int
) -> tuple[Decision, list[Event]]:
    """Trials the cluster has no room for while others wait at rungs holding theirs (GPUs):
    park that many waiting trials, less the `freeing` pods on their way out (they make room
    soon). Returns the decision and an event for each trial parked."""
    short = sum(1 for why in unschedulable if any(m in why for m in LACK_OF_ROOM)) - freeing
    if short <= 0:
        return decision, []
    parked = park_waiting(sweep, decision, short)
    events = [
        ("Normal", TRIAL_PARKED, f"{record.id}: {record.reason}")
        for prior, record in zip(decision.records, parked.records, strict=True)
        if record.parked_at and not prior.parked_at
    ]
    return parked, events


def _newly_decided(
    telemetry: Telemetry, namespace: str, decision: Decision, previous: LRSweepStatus
) -> list[Event]:
    """Count the trials decided since `previous`, by phase and verdict; a warning event for
    each that failed."""
    events: list[Event] = []
    for r in decision.records:
        before = previous.trials.get(r.id)
        if r.terminal and (before is None or before.phase is not r.phase):
            telemetry.trials.labels(namespace, r.phase.value, r.verdict.value).inc()
            if r.phase is TrialPhase.FAILED:
                events.append(("Warning", "TrialFailed", f"{r.id}: {r.reason}"))
    return events


async def _write_output(
    cluster: Cluster,
    namespace: str,
    body: Mapping[str, Any],
    spec: LRSweepSpec,
    status: LRSweepStatus,
) -> str | None:
    """Write the winner to the ConfigMap `spec.output.configMap` names, if it names one;
    return why it was left alone (None: written, or none named)."""
    if not spec.output.configMap:
        return None
    return await cluster.apply_configmap(namespace, build_result_configmap(body, status))


async def _tidy(
    cluster: Cluster,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    spec: LRSweepSpec,
    status: LRSweepStatus,
) -> None:
    """Delete the pods a finished sweep still has (trials stopped by the reconcile that ended
    it), listed once per operator process (`Cluster.tidied`), not at every tick."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta.get("namespace", "default")
    key = meta.get("uid") or f"{namespace}/{name}"
    if key not in cluster.tidied:
        pods = await cluster.list_pods(namespace, name)
        if not await delete_unwanted_pods(cluster, settings, namespace, spec, status, pods):
            cluster.tidied.add(key)


async def delete_unwanted_pods(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    spec: LRSweepSpec,
    status: LRSweepStatus,
    pods: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Delete the pods a stored status no longer wants (`unwanted_pods`), each with the stop
    grace period. Where the sweep keeps checkpoints (`spec.trial.checkpointDir`), first tell
    those of decided trials to delete their checkpoints. A trainer that does not answer
    (busy, or not serving yet) is asked again by the next reconcile, and its pod left
    until then, DISCARD_TRIES times in all before it is deleted anyway, its checkpoint
    kept (`Cluster.undiscarded` counts). Returns the pods left for the next reconcile."""
    grace = settings.stop_grace_seconds
    discard = (
        (spec.trial.metricsPort, settings.scrape_timeout) if spec.trial.checkpointDir else None
    )
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


# What changes in a running trial's status as it trains, between the sweep's decisions.
PROGRESS_FIELDS = frozenset({"step", "progressTime", "verdict", "reason"})


def progress_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether status `new` differs from `old` only in how far trials running in both have
    trained (PROGRESS_FIELDS): no trial added, launched, decided, or past a rung, nothing
    else of the sweep changed."""
    if {k: v for k, v in old.items() if k != "trials"} != {
        k: v for k, v in new.items() if k != "trials"
    }:
        return False
    before, after = old.get("trials") or {}, new.get("trials") or {}
    if before.keys() != after.keys():
        return False
    for tid, trial in after.items():
        was = before[tid]
        if trial == was:
            continue
        if not trial.get("phase") == was.get("phase") == TrialPhase.RUNNING:
            return False
        if any(trial.get(k) != was.get(k) for k in (trial.keys() | was.keys()) - PROGRESS_FIELDS):
            return False
    return True


def _progress_due(previous: LRSweepStatus, now: str, settings: OperatorSettings) -> bool:
    """Whether the running trials' progress is due to be written: `progress_write_interval`
    has passed since the last write that moved one on (their latest progressTime)."""
    moments = [
        m
        for t in previous.trials.values()
        if t.phase is TrialPhase.RUNNING and (m := parse_timestamp(t.progressTime))
    ]
    moment = parse_timestamp(now)
    if not moments or moment is None:
        return True
    return (moment - max(moments)).total_seconds() >= settings.progress_write_interval


def combined(events: Sequence[Event], limit: int = EVENT_MESSAGE_LIMIT) -> list[Event]:
    """A reconcile's events, one per (type, reason) in the order each first came, their
    messages joined by "; " (several trials started or stopped in one pass are one Event
    each kind, not one each trial: every Event is an API call); split where a message would
    pass `limit` characters."""
    out: list[Event] = []
    last: dict[tuple[str, str], int] = {}
    for type_, reason, message in events:
        at = last.get((type_, reason))
        if at is not None and len(out[at][2]) + 2 + len(message) <= limit:
            out[at] = (type_, reason, f"{out[at][2]}; {message}")
            continue
        last[(type_, reason)] = len(out)
        out.append((type_, reason, message))
    return out


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
