"""Reading a trial's progress: its Prometheus endpoint and its exit summary.

Both are untrusted input from user code: anything unparsable becomes an empty reading plus
a reason, never an exception that could stop a sweep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from lrsweep import contract
from lrsweep.engine.trials import Observation, Outcome, ProcessState
from lrsweep.engine.verdict import Point

PREFIX = contract.SERIES_PREFIX
HISTORY = contract.HISTORY_SERIES
EXIT_USAGE = contract.EXIT_USAGE
RANGE_METRICS = contract.RANGE_COLUMNS
Curve = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Reading:
    """What one scrape or one summary says about an attempt."""

    step: int | None = None
    points: tuple[Point, ...] = ()
    range_curve: tuple[tuple[float, float], ...] = ()
    finished: bool = False
    diverged: bool = False
    outcome: Outcome | None = None
    reason: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)
    # The step of the checkpoint the attempt went on from (0: it started at the first step).
    resumed_from: int = 0

    @property
    def furthest_step(self) -> int:
        """The furthest step it shows: the trainer's step, or its newest evaluation."""
        return max([self.step or 0, *(p.step for p in self.points)])


class MetricsError(ValueError):
    """The endpoint answered with something that is not Prometheus text."""


def _points(history: Mapping[int, Mapping[str, float]]) -> tuple[tuple[Point, ...], Curve]:
    points: list[Point] = []
    curve: list[tuple[float, float]] = []
    for step in sorted(history):
        metrics = dict(history[step])
        if all(m in metrics for m in RANGE_METRICS):
            curve.append((metrics.pop("learning_rate"), metrics.pop("smoothed_loss")))
        if metrics:
            points.append(Point(step, metrics))
    return tuple(points), tuple(curve)


def parse_metrics(text: str, serving: Mapping[str, str] | None = None) -> Reading:
    """Parse a trainer's /metrics text (docs/contract.md).

    `serving`: the `sweep` and `trial` labels the samples must carry. Samples of another
    sweep or trial mean the address reached another trainer (a pod IP handed on, a port
    another process took): that reading is refused rather than taken for this trial's."""
    history: dict[int, dict[str, float]] = {}
    gauges: dict[str, float] = {}
    named: set[tuple[str | None, ...]] = set()  # the (sweep, trial) labels of our samples
    keys = tuple(serving or ())
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.startswith(PREFIX):
                    continue
                named.add(tuple(sample.labels.get(key) for key in keys))
                if sample.name == HISTORY:
                    step = int(sample.labels["step"])
                    history.setdefault(step, {})[sample.labels["metric"]] = float(sample.value)
                else:
                    gauges[sample.name.removeprefix(PREFIX)] = float(sample.value)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise MetricsError(f"unparsable metrics: {err}") from None
    if serving:
        _check_labels(named, serving)
    points, curve = _points(history)
    return Reading(
        step=_step(gauges.get("step")),
        points=points,
        range_curve=curve,
        finished=gauges.get("finished", 0.0) == 1.0,
        diverged=gauges.get("diverged", 0.0) == 1.0,
        extra=gauges,
        resumed_from=max(0, _step(gauges.get("resumed_from_step")) or 0),
    )


def _check_labels(named: set[tuple[str | None, ...]], serving: Mapping[str, str]) -> None:
    """Raise MetricsError if samples name another sweep or trial than `serving` (labels a
    sample lacks, None, are not checked)."""
    wanted = tuple(serving.values())
    for labels in named:
        if any(got is not None and got != want for got, want in zip(labels, wanted, strict=True)):
            found = ", ".join(f"{key} {got!r}" for key, got in zip(serving, labels, strict=True))
            want_text = ", ".join(f"{key} {value!r}" for key, value in serving.items())
            raise MetricsError(f"the endpoint serves {found}, not {want_text}")


def _step(value: float | None) -> int | None:
    """A step from a gauge (None: absent or not finite)."""
    return int(value) if value is not None and math.isfinite(value) else None


def _whole(value: object) -> int:
    """A count from untrusted JSON: a whole number >= 0, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _observed(
    trial: str, attempt: int, state: ProcessState, reading: Reading, outcome: Outcome | None = None
) -> Observation:
    return Observation(
        trial,
        attempt,
        state,
        step=reading.step,
        points=reading.points,
        range_curve=reading.range_curve,
        outcome=outcome,
        reason=reading.reason,
        resumed_from=reading.resumed_from,
    )


def failed_attempt(
    trial: str, attempt: int, reason: str, *, permanent: bool = False
) -> Observation:
    """An attempt the runtime ends as failed on its own evidence (it never served metrics,
    hung, or its container cannot start): retried as usual unless `permanent`."""
    return Observation(
        trial, attempt, ProcessState.EXITED, outcome=Outcome.FAILED, reason=reason,
        permanent=permanent,
    )  # fmt: skip


def stalled_reason(step: int, seconds: float) -> str:
    """Why a running trial whose step stood still for `seconds` failed."""
    return (
        f"made no progress for over {seconds:g} s (at step {step}): hung? (a data loader, a "
        "collective, a deadlock); ended and retried"
    )


def silent_reason(url: str, seconds: float, also: str = "") -> str:
    """Why a running trial that never served readable metrics in `seconds` failed; `also`:
    one more thing to check, where the runtime knows one."""
    return (
        f"served no metrics at {url} in {seconds:g} s running: does it report through "
        f"lrsweep_trainer.report, on spec.trial.metricsPort{also}?"
    )


def running_observation(trial: str, attempt: int, reading: Reading | None) -> Observation:
    """A running attempt, from one scrape of its endpoint (None: nothing readable)."""
    if reading is None:
        return Observation(trial, attempt, ProcessState.RUNNING)
    return _observed(trial, attempt, ProcessState.RUNNING, reading)


def _number(value: Any) -> float:
    if isinstance(value, str):
        return float(value)  # "NaN", "Infinity", "-Infinity"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def parse_summary(text: str) -> Reading:
    """Parse the JSON summary a trainer writes on exit; raises ValueError if malformed."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("summary is not a JSON object")
    try:
        outcome = Outcome(data["status"])
    except (KeyError, ValueError):
        raise ValueError(f"summary has no valid status: {data.get('status')!r}") from None
    history = data.get("history") or {}
    steps = [int(s) for s in history.get("step", [])]
    merged: dict[int, dict[str, float]] = {s: {} for s in steps}
    for name, values in history.items():
        if name == "step":
            continue
        if len(values) != len(steps):
            raise ValueError(
                f"summary history {name!r} has {len(values)} values for {len(steps)} steps"
            )
        for s, v in zip(steps, values, strict=True):
            if v is not None:
                merged[s][name] = _number(v)
    points, _ = _points(merged)
    curve: Curve = ()
    if isinstance(rt := data.get("rangeTest"), dict):
        # A point without a rate or loss (null: trainers once wrote one for an evaluation
        # logged before the range test's first step) is no point of the curve.
        pairs = zip(rt.get("learning_rate", []), rt.get("smoothed_loss", []), strict=True)
        curve = tuple(
            (_number(lr), _number(loss))
            for lr, loss in pairs
            if lr is not None and loss is not None
        )
    step = data.get("step")
    return Reading(
        step=int(step) if isinstance(step, int) else None,
        points=points,
        range_curve=curve,
        finished=True,
        diverged=outcome is Outcome.DIVERGED,
        outcome=outcome,
        reason=str(data.get("reason", ""))[:500],
        resumed_from=_whole(data.get("resumedFrom")),
    )


def exit_observation(
    trial: str,
    attempt: int,
    code: int | None,
    summary: Reading | None,
    *,
    detail: str,
    missing: str,
) -> Observation:
    """An attempt that ended, from its exit code and its summary (None: none readable).

    A non-zero exit fails the attempt unless its summary says it diverged; a failed summary's
    reason (the trainer's own words) says why, else `detail` (the last log line, or the
    termination message). Exit code 2, a usage error, fails it for good (docs/contract.md,
    "Exit"). An exit without a summary fails it for `missing`.
    """
    if code not in (0, None) and (summary is None or summary.outcome is not Outcome.DIVERGED):
        if summary is not None and summary.outcome is Outcome.FAILED and summary.reason:
            detail = summary.reason
        why = f"exit code {code}" + (f": {detail}" if detail else "")
        return Observation(
            trial,
            attempt,
            ProcessState.EXITED,
            points=summary.points if summary else (),
            outcome=Outcome.FAILED,
            reason=why,
            permanent=code == EXIT_USAGE,
            resumed_from=summary.resumed_from if summary else 0,
        )
    if summary is None:
        return Observation(
            trial, attempt, ProcessState.EXITED, outcome=Outcome.FAILED, reason=missing
        )
    return _observed(trial, attempt, ProcessState.EXITED, summary, summary.outcome)
