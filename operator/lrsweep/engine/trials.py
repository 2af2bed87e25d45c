"""What the engine knows about each trial, and how an observation updates it.

A runtime (local processes or Kubernetes pods) turns what it sees into `Observation`s; the
engine folds them into `TrialRecord`s with `observe`. Records are everything the engine
decides from, and they round-trip through the sweep's status (`to_status`/`from_status`),
which is how the operator resumes after a restart without losing a result.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from lrsweep.api import LRSweepStatus, TrialPhase, TrialStatus, Verdict
from lrsweep.engine.verdict import Point, judge

Mode = Literal["train", "range-test"]
TERMINAL = frozenset(
    {TrialPhase.SUCCEEDED, TrialPhase.STOPPED, TrialPhase.DIVERGED, TrialPhase.FAILED}
)


class ProcessState(enum.StrEnum):
    """What a runtime sees of one attempt's process or pod."""

    PENDING = "pending"  # created, not started (e.g. waiting for a GPU)
    RUNNING = "running"
    EXITED = "exited"  # ended by itself; `outcome` says how
    LOST = "lost"  # gone without a result: evicted, deleted by someone, process vanished


class Outcome(enum.StrEnum):
    """How an attempt ended, from the trainer's summary or its exit code."""

    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"


@dataclass(frozen=True)
class Observation:
    trial: str
    attempt: int
    state: ProcessState
    step: int | None = None
    points: Sequence[Point] = ()
    # Range tests: (rate, smoothed loss) pairs in step order.
    range_curve: Sequence[tuple[float, float]] = ()
    outcome: Outcome | None = None
    reason: str = ""
    # A failure no new attempt can mend (a usage error: bad arguments, a missing script).
    permanent: bool = False
    # The step the attempt went on from, a checkpoint of an earlier one (0: the first step).
    resumed_from: int = 0


@dataclass(frozen=True)
class TrialRecord:
    id: str
    learning_rate: float
    seed: int
    mode: Mode = "train"
    round: int = 0  # which proposal round created it (0: first candidates)
    phase: TrialPhase = TrialPhase.PENDING
    attempts: int = 0  # number of the current attempt (0: never launched)
    queued: bool = True  # waiting for the launch of attempt `attempts + 1`
    step: int = 0
    spent_steps: int = 0  # steps of earlier attempts (compute accounting)
    start_step: int = 0  # the current attempt went on from this step's checkpoint
    # Where the last attempt that ended was last seen: `spent_steps` counts its steps up to
    # there. One that goes on from a checkpoint further on shows it trained past that unseen.
    counted_to: int = 0
    points: tuple[Point, ...] = ()
    rungs: Mapping[int, float] = field(default_factory=dict)  # objective at rung steps
    range_curve: tuple[tuple[float, float], ...] = ()
    verdict: Verdict = Verdict.UNKNOWN
    reason: str = ""
    # Waiting at this rung with its process or pod ended to make room (`park`); 0: not parked.
    parked_at: int = 0
    # Attempts that went on after a park (`resume`): counted in `attempts`, never as failures.
    resumes: int = 0

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @property
    def steps_used(self) -> int:
        """Steps trained over every attempt, again after a park, a retry or a restart."""
        return self.spent_steps + self.step - self.start_step

    @property
    def steps_reached(self) -> int:
        """How far the trial got: what the search learned from it, however many attempts
        it took (the furthest step of its current or last ended attempt)."""
        return max(self.step, self.counted_to)


def merge_points(old: Sequence[Point], new: Sequence[Point]) -> tuple[Point, ...]:
    by_step = {p.step: p for p in old}
    for p in new:
        by_step[p.step] = p
    return tuple(by_step[s] for s in sorted(by_step))


def rung_values(
    points: Sequence[Point], rung_steps: Sequence[int], metric: str
) -> dict[int, float]:
    """The objective at each rung step that has an evaluation."""
    at = {p.step: p.metrics.get(metric) for p in points}
    return {s: v for s in rung_steps if (v := at.get(s)) is not None and not math.isnan(v)}


def _rungs(record: TrialRecord, seen: Mapping[int, float]) -> dict[int, float]:
    """The rung values after an observation: the newest reading of each (a summary's over a
    scrape's), except those an attempt that went on after a park trains through again (up to
    its parked rung, `counted_to`): they were compared already and stand."""
    decided = {k: v for k, v in record.rungs.items() if record.resumes and k <= record.counted_to}
    return {**record.rungs, **seen, **decided}


def observe(
    record: TrialRecord,
    obs: Observation,
    *,
    metric: str,
    rung_steps: Sequence[int],
    full_steps: int,
    max_retries: int,
) -> TrialRecord:
    """Fold one observation of the current attempt into a trial's record."""
    if record.parked_at:
        return record  # its process or pod is being ended: nothing it says counts
    if obs.attempt != record.attempts or record.terminal or record.queued:
        # A stale attempt, or a trial already decided (e.g. stopped by the sweep): the
        # sweep's decision stands, but late evaluations still count for the record.
        if record.terminal and obs.attempt == record.attempts and obs.points:
            # Kept for the curve and the compute count, but not as rung results: what a
            # stopped trial did after its decision depends on timing, and decisions must not.
            return replace(
                record,
                points=merge_points(record.points, obs.points),
                step=max(record.step, obs.step or 0),
            )
        return record
    points = merge_points(record.points, obs.points)
    step = max(obs.step or 0, points[-1].step if points else 0)
    start = max(record.start_step, min(obs.resumed_from, step))
    # Steps an earlier attempt trained after it was last seen (it died before reporting
    # them) but kept a checkpoint of: they count once the attempt going on from it says so.
    unseen = max(0, start - record.counted_to) if start > record.start_step else 0
    updated = replace(
        record,
        points=points,
        step=step,
        start_step=start,
        spent_steps=record.spent_steps + unseen,
        rungs=_rungs(record, rung_values(points, rung_steps, metric)),
        range_curve=tuple(obs.range_curve) or record.range_curve,
    )
    if obs.state is ProcessState.PENDING:
        return replace(updated, phase=TrialPhase.PENDING, reason=obs.reason or record.reason)
    if obs.state is ProcessState.RUNNING:
        judged = judge(points)
        return replace(
            updated, phase=TrialPhase.RUNNING, verdict=judged.verdict, reason=judged.reason
        )
    if obs.state is ProcessState.EXITED and obs.outcome is Outcome.DIVERGED:
        judged = judge(points, diverged=True, reason=obs.reason)
        return replace(
            updated, phase=TrialPhase.DIVERGED, verdict=judged.verdict, reason=judged.reason
        )
    if obs.state is ProcessState.EXITED and obs.outcome is Outcome.FINISHED:
        if record.mode == "range-test":
            return replace(
                updated,
                phase=TrialPhase.SUCCEEDED,
                verdict=Verdict.CONVERGING,
                reason=obs.reason or "range test complete",
            )
        if step >= full_steps:
            judged = judge(points)
            return replace(
                updated, phase=TrialPhase.SUCCEEDED, verdict=judged.verdict, reason=judged.reason
            )
        why = f"exited at step {step} of {full_steps} without a result"
        return _failed_attempt(updated, why, max_retries)
    # Failed outcome, or lost: a new attempt if retries remain and one could succeed.
    if obs.state is ProcessState.LOST:
        why = obs.reason or "the trial's process or pod disappeared"
    else:
        why = obs.reason or "the trainer failed"
    if obs.permanent:
        return _failed_attempt(updated, f"{why} (a usage error: not retried)", max_retries=0)
    return _failed_attempt(updated, why, max_retries)


def requeue(record: TrialRecord, reason: str) -> TrialRecord:
    """Queue a new attempt of the trial; the steps spent so far count.

    The attempt starts from nothing as far as the engine knows: one that goes on from a
    checkpoint reports the evaluations it kept and the step it went on from (`resumed_from`).
    """
    return replace(
        record,
        phase=TrialPhase.PENDING,
        queued=True,
        spent_steps=record.steps_used,
        step=0,
        start_step=0,
        counted_to=record.step,
        points=(),
        rungs={},
        reason=reason,
    )


def park(record: TrialRecord) -> TrialRecord:
    """Park a trial waiting at the rung it reached: its process or pod is ended to make room
    for trials that cannot start, and it waits for its decision without holding anything.
    Its rung values stand; promoted past the rung, it is relaunched (`resume`)."""
    return replace(
        record,
        parked_at=record.step,
        reason=f"parked at rung {record.step} to make room for trials that cannot start; "
        "it goes on once promoted",
    )


def resume(record: TrialRecord) -> TrialRecord:
    """Queue the attempt that takes a parked trial on past its rung. Like `requeue`, but the
    rung values stay, and the attempt is no failure: it uses none of the trial's retries.
    With checkpoints it goes on from the rung; without, it trains up to it again."""
    return replace(
        requeue(record, f"promoted past rung {record.parked_at}; relaunched to go on"),
        rungs=record.rungs,
        parked_at=0,
        resumes=record.resumes + 1,
    )


def interrupted(record: TrialRecord) -> TrialRecord:
    """A record as its sweep resumes after the sweep itself stopped (`lrsweep run --resume`).

    A trial that was running or paused lost its process with the sweep: it starts again even
    when it has no retries left (the relaunch is its next attempt, so a later failure has one
    retry fewer). Decided and queued trials stay as they were.
    """
    if record.terminal or record.queued:
        return record
    return requeue(record, f"attempt {record.attempts} interrupted with the sweep; relaunched")


def _failed_attempt(record: TrialRecord, why: str, max_retries: int) -> TrialRecord:
    if record.attempts - record.resumes <= max_retries:
        return requeue(record, f"attempt {record.attempts} failed ({why}); retrying")
    return replace(
        record,
        phase=TrialPhase.FAILED,
        verdict=Verdict.FAILED,
        reason=f"failed after {record.attempts} attempt(s): {why}",
    )


def to_status(record: TrialRecord, score: float | None) -> TrialStatus:
    return TrialStatus(
        learningRate=record.learning_rate,
        seed=record.seed,
        mode=record.mode,
        round=record.round,
        phase=record.phase,
        step=record.step,
        spentSteps=record.spent_steps,
        startStep=record.start_step,
        countedTo=record.counted_to,
        score=score,
        verdict=record.verdict,
        reason=record.reason,
        attempts=record.attempts,
        queued=record.queued,
        rungs={str(k): v for k, v in sorted(record.rungs.items())},
        parkedAt=record.parked_at,
        resumes=record.resumes,
    )


def from_status(trial_id: str, status: TrialStatus) -> TrialRecord:
    """Rebuild a record from the sweep's status (curves are not kept there)."""
    return TrialRecord(
        id=trial_id,
        learning_rate=status.learningRate,
        seed=status.seed,
        mode=status.mode,
        round=status.round,
        phase=status.phase,
        attempts=status.attempts,
        queued=status.queued,
        step=status.step,
        spent_steps=status.spentSteps,
        start_step=status.startStep,
        counted_to=status.countedTo,
        rungs={int(k): v for k, v in status.rungs.items()},
        verdict=status.verdict,
        reason=status.reason,
        parked_at=status.parkedAt,
        resumes=status.resumes,
    )


def records_from_status(status: LRSweepStatus) -> list[TrialRecord]:
    """Every trial of a stored status, in trial-id order."""
    return [from_status(tid, t) for tid, t in sorted(status.trials.items())]
