"""Backends whose trials follow known curves instead of training (see `local.Backend`).

`lrsweep benchmark` replays every strategy on curves recorded from a user's script; the
benchmarks under benchmarks/ follow recorded runs or curves they compute. Each running trial
advances one evaluation per poll, and the trainer's rung gate holds: a gated trial waits at
a rung until the sweep promotes it past. Nothing here sleeps or starts a process, so a sweep
through `local.run_sweep` with such a backend takes milliseconds, and decides exactly as it
would on trial processes that report the same evaluations.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lrsweep.engine.sweep import Launch, Promote
from lrsweep.engine.trials import Observation, Outcome, ProcessState
from lrsweep.engine.verdict import Point

# Polls in a row with trials running and none able to move before the backend gives up.
IDLE_POLLS = 3


class StuckError(RuntimeError):
    """Every trial waits at a rung and none can move: the sweep waits on itself."""


@dataclass(frozen=True)
class Curve:
    """What one run at `rate` reported, up to step `end`: its evaluations, and how it ended
    there (at the budget; diverged; or failed, `failure` saying why)."""

    rate: float
    points: tuple[Point, ...]
    end: int
    diverged: bool = False
    range_curve: tuple[tuple[float, float], ...] = ()
    failure: str = ""

    def done(self, steps: int) -> bool:
        """Nothing lies beyond `end`: it reached the budget or stopped by itself."""
        return self.diverged or bool(self.failure) or self.end >= steps

    def upto(self, step: int) -> Curve:
        """The prefix a trial stopped at `step` saw."""
        if step >= self.end:
            return self
        return Curve(self.rate, tuple(p for p in self.points if p.step <= step), step)

    def final(self, metric: str, steps: int) -> float | None:
        """The objective at the full budget (None: the run ended before it)."""
        if self.diverged or self.failure or self.end < steps:
            return None
        return next((p.metrics.get(metric) for p in self.points if p.step == steps), None)

    def to_json(self) -> dict[str, Any]:
        """JSON with infinities and NaN as strings (strict JSON has no number for them)."""
        data: dict[str, Any] = {
            "rate": self.rate,
            "end": self.end,
            "diverged": self.diverged,
            "points": [[p.step, {k: _num(v) for k, v in p.metrics.items()}] for p in self.points],
            "range": [[lr, _num(loss)] for lr, loss in self.range_curve],
        }
        if self.failure:
            data["failure"] = self.failure
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Curve:
        return cls(
            rate=float(data["rate"]),
            end=int(data["end"]),
            diverged=bool(data["diverged"]),
            points=tuple(
                Point(int(step), {k: float(v) for k, v in metrics.items()})
                for step, metrics in data["points"]
            ),
            range_curve=tuple((float(lr), float(loss)) for lr, loss in data["range"]),
            failure=str(data.get("failure", "")),
        )


def _num(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


@dataclass
class FollowingBackend(abc.ABC):
    """The gate and the bookkeeping; `advance` (each subclass's) says what a trial reports
    next."""

    running: dict[str, tuple[Launch, int]] = field(default_factory=dict, kw_only=True)
    promoted: dict[str, int] = field(default_factory=dict, kw_only=True)
    idle_polls: int = field(default=0, kw_only=True)

    @abc.abstractmethod
    def advance(self, launch: Launch, step: int) -> Observation:
        """The next observation of a trial last seen at `step`: running at a later step,
        or exited."""

    def launch(self, launch: Launch) -> None:
        self.running[launch.trial] = (launch, 0)

    def stop(self, trial: str) -> None:
        self.running.pop(trial, None)

    def promote(self, promotion: Promote) -> None:
        self.promoted[promotion.trial] = max(promotion.rung, self.promoted.get(promotion.trial, 0))

    def observe(self) -> list[Observation]:
        out: list[Observation] = []
        for trial, (launch, step) in sorted(self.running.items()):
            if step in launch.gates and self.promoted.get(trial, 0) < step:
                continue  # paused at a rung
            observation = self.advance(launch, step)
            if observation.state is ProcessState.RUNNING:
                self.running[trial] = (launch, observation.step or step)
            else:
                del self.running[trial]
            out.append(observation)
        self.idle_polls = 0 if out or not self.running else self.idle_polls + 1
        if self.idle_polls > IDLE_POLLS:
            raise StuckError(f"trials {sorted(self.running)} all wait at a rung")
        return out


@dataclass
class CurveBackend(FollowingBackend):
    """Trials that follow curves, asked for as far as each trial needs.

    `train(launch, until)`: the curve of a training trial's rate and seed, at least up to
    step `until` (or ending before it); `range_test(launch)`: the curve of a range test."""

    train: Callable[[Launch, int], Curve]
    range_test: Callable[[Launch], Curve]

    def advance(self, launch: Launch, step: int) -> Observation:
        if launch.mode == "range-test":
            curve = self.range_test(launch)
            return Observation(
                launch.trial,
                launch.attempt,
                ProcessState.EXITED,
                curve.end,
                curve.points,
                range_curve=curve.range_curve,
                outcome=_ended(curve) or Outcome.FINISHED,
                reason=curve.failure,
            )
        target = min(step + launch.eval_every, launch.steps)
        # Ask as far as the trial can go before it next waits for a decision.
        until = min([g for g in launch.gates if g >= target] or [launch.steps])
        curve = self.train(launch, until).upto(target)
        outcome = _ended(curve)
        if outcome is not None:
            target = curve.end
        elif target >= launch.steps:
            outcome = Outcome.FINISHED
        state = ProcessState.RUNNING if outcome is None else ProcessState.EXITED
        return Observation(
            launch.trial,
            launch.attempt,
            state,
            target,
            curve.points,
            outcome=outcome,
            reason=curve.failure,
        )


def _ended(curve: Curve) -> Outcome | None:
    """How a run that stopped before its budget ended (None: it did not)."""
    if curve.diverged:
        return Outcome.DIVERGED
    return Outcome.FAILED if curve.failure else None
