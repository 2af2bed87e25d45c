"""Reading trial pods: what each says of its trial's current attempt, as the engine's
`Observation`s (ended, stuck, pending, or running and scraped), and where the pods stand
against a stored status (expected, no longer wanted, on their way out)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from lrsweep import contract
from lrsweep.api import LRSweepSpec, LRSweepStatus, Phase, TrialStatus
from lrsweep.engine.trials import TERMINAL as TERMINAL_TRIAL_PHASES
from lrsweep.engine.trials import Observation, ProcessState, TrialRecord
from lrsweep.runtime.clock import parse_timestamp
from lrsweep.runtime.cluster import Cluster
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
from lrsweep.runtime.pods import LABEL_TRIAL, attempt_of, pod_url
from lrsweep.settings import OperatorSettings

log = logging.getLogger(__name__)


# --- what a pod says of its trial -------------------------------------------------------------


async def observe_trials(
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
    trial's stored progressTime (`kube.stamp_progress`)."""
    by_key = {
        (p["metadata"]["labels"].get(LABEL_TRIAL), attempt_of(p)): p
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
    moment = parse_timestamp(since) if since else None
    if moment is None or (now - moment).total_seconds() <= deadline:
        return None
    if reading is not None and reading.furthest_step > record.step:
        return None  # it moved since the stored status
    return failed_attempt(record.id, record.attempts, stalled_reason(record.step, deadline))


def _started_at(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When the pod's first container started running."""
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if moment := parse_timestamp(
            ((c.get("state") or {}).get("running") or {}).get("startedAt")
        ):
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


def _scheduled_at(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When the pod was bound to its node (else created): waiting for a GPU is not stuck."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (c.get("type"), c.get("status")) != ("PodScheduled", "True"):
            continue
        if (moment := parse_timestamp(c.get("lastTransitionTime"))) is not None:
            return moment
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return parse_timestamp(created) if created else None


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


# --- pods against a stored status -------------------------------------------------------------


def launched_pods(status: LRSweepStatus) -> set[tuple[str, int]]:
    """The (trial, attempt) pods a stored status says exist: the current attempt of each
    launched trial not yet decided, queued or parked (what a reconcile takes for lost when
    it finds none)."""
    return {
        (tid, t.attempts)
        for tid, t in status.trials.items()
        if t.attempts and not (t.phase in TERMINAL_TRIAL_PHASES or t.queued or t.parkedAt)
    }


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
        if _live(pod) and (over or _done_with(_trial_of(status, pod), attempt_of(pod)))
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
