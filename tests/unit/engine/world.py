"""A simulated world for engine tests: trials whose curves are known functions of the rate.

It plays the runtime's part (launch, stop, promote, observe) without processes, and lets a
test pick the order in which running trials make progress, to show decisions do not depend
on timing. Gated trials pause at each rung until promoted, with no timeout: a sweep that
could wait on itself forever does not finish here.

Attempts can also die mid-run (`crash`). With `checkpoints`, a trial keeps its state at
every evaluation, as the trainer does, and its next attempt goes on from there: it reports
the evaluations it kept and the step it went on from, and pauses again at a rung it was
kept at.

With `room`, at most that many attempts run at once, as on a cluster with that many GPUs:
the rest wait in launch order, and `run` parks trials waiting at rungs to make room for
them, as the operator does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lrsweep.api import LRSweepSpec
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.sweep import Decision, Launch, Promote, Sweep, decide, park_waiting, update
from lrsweep.engine.trials import Observation, Outcome, ProcessState, TrialRecord
from lrsweep.engine.verdict import Point
from lrsweep.runtime.metrics import exit_observation

LossFn = Callable[[float, int], float]


def bowl(best: float = 0.03, cliff: float = 300.0) -> LossFn:
    """A loss whose floor is lowest at `best` and that blows up above `cliff` x best."""

    def loss(lr: float, step: int) -> float:
        distance = abs(math.log10(lr / best))
        if lr > best * cliff:
            return math.inf if step > 20 else 2.0 * (1 + step)
        floor = 0.1 + 0.5 * distance**2
        speed = min(1.0, lr / best)
        return floor + 2.0 * math.exp(-speed * step / 50)

    return loss


def range_curve(loss: LossFn, start: float, end: float, steps: int) -> list[tuple[float, float]]:
    """A synthetic range test: loss falls as the rate grows, then explodes."""
    curve = []
    for i in range(steps):
        lr = start * (end / start) ** (i / max(1, steps - 1))
        value = loss(lr, 200)
        if not math.isfinite(value):
            curve.append((lr, 50.0))
            break
        curve.append((lr, value))
    return curve


@dataclass
class World:
    spec: LRSweepSpec
    loss: LossFn
    seed: int = 0
    fail: Callable[[str, int], bool] = lambda trial, attempt: False
    exit_code: int = 1  # how a failing attempt exits (2: a usage error, not retried)
    running: dict[str, tuple[Launch, int]] = field(default_factory=dict)
    launched: list[Launch] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    promoted: dict[str, int] = field(default_factory=dict)  # trial -> last rung let through
    # (trial, attempt, step): whether that attempt dies at that step, after reporting it.
    crash: Callable[[str, int, int], bool] = lambda trial, attempt, step: False
    checkpoints: bool = False
    trained: int = 0  # steps trained by every attempt together
    room: int | None = None  # attempts that can run at once (None: any number)
    queue: list[Launch] = field(default_factory=list)  # launched, waiting for room
    parked: list[str] = field(default_factory=list)  # every park, in order

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.history: dict[str, list[Point]] = {}  # the current attempt's evaluations
        self.kept: dict[str, list[Point]] = {}  # evaluations up to each trial's checkpoint
        self.pending: list[Observation] = []

    def launch(self, launch: Launch) -> None:
        self.launched.append(launch)
        self.queue.append(launch)

    def _start(self, launch: Launch) -> None:
        self.promoted.pop(launch.trial, None)
        kept = self.kept.pop(launch.trial, []) if self.checkpoints else []
        start = kept[-1].step if kept else 0
        self.running[launch.trial] = (launch, start)
        self.history[launch.trial] = list(kept)
        if kept:
            self.pending.append(
                Observation(
                    launch.trial,
                    launch.attempt,
                    ProcessState.RUNNING,
                    start,
                    kept,
                    resumed_from=start,
                )
            )

    def stop(self, trial: str) -> None:
        self.stopped.append(trial)
        self.running.pop(trial, None)
        self.queue = [launch for launch in self.queue if launch.trial != trial]

    def park(self, trial: str) -> None:
        """End a parked trial's attempt; with checkpoints it keeps what it reached."""
        self.parked.append(trial)
        self.running.pop(trial)
        self.kept[trial] = self.history[trial]

    @property
    def short(self) -> int:
        """Launched attempts waiting for room."""
        return len(self.queue)

    def promote(self, promotion: Promote) -> None:
        current = self.running.get(promotion.trial)
        if current is not None and current[0].attempt == promotion.attempt:
            self.promoted[promotion.trial] = max(
                promotion.rung, self.promoted.get(promotion.trial, 0)
            )

    def paused(self, launch: Launch, step: int) -> bool:
        """At a rung and not yet let through it (the rung gate)."""
        return step in launch.gates and self.promoted.get(launch.trial, 0) < step

    def tick(self) -> list[Observation]:
        """Start what there is room for, then advance a random subset of running trials by
        one evaluation."""
        while self.queue and (self.room is None or len(self.running) < self.room):
            self._start(self.queue.pop(0))
        out, self.pending = self.pending, []
        for trial in sorted(self.running):
            if self.rng.random() < 0.4:
                continue
            launch, step = self.running[trial]
            if self.paused(launch, step):
                continue
            if self.crash(trial, launch.attempt, step):
                del self.running[trial]
                self.kept[trial] = self.history[trial]
                out.append(
                    exit_observation(trial, launch.attempt, 1, None, detail="", missing="killed")
                )
                continue
            if self.fail(trial, launch.attempt):
                del self.running[trial]
                # The runtimes' own rule for an exit without a summary.
                ended = exit_observation(
                    trial, launch.attempt, self.exit_code, None, detail="", missing=""
                )
                out.append(ended)
                continue
            if launch.mode == "range-test":
                assert launch.range_start is not None
                assert launch.range_end is not None
                curve = range_curve(self.loss, launch.range_start, launch.range_end, launch.steps)
                self.trained += len(curve)
                del self.running[trial]
                out.append(
                    Observation(
                        trial,
                        launch.attempt,
                        ProcessState.EXITED,
                        step=len(curve),
                        range_curve=curve,
                        outcome=Outcome.FINISHED,
                    )
                )
                continue
            step += launch.eval_every
            self.trained += launch.eval_every
            value = self.loss(launch.learning_rate, step) * (1 + 0.001 * launch.seed)
            point = Point(step, {"val_loss": value, "train_loss": value * 0.9})
            self.history.setdefault(trial, []).append(point)
            if not math.isfinite(value):
                del self.running[trial]
                out.append(
                    Observation(
                        trial,
                        launch.attempt,
                        ProcessState.EXITED,
                        step=step,
                        points=[point],
                        outcome=Outcome.DIVERGED,
                        reason=f"loss became inf at step {step}",
                    )
                )
            elif step >= launch.steps:
                del self.running[trial]
                out.append(
                    Observation(
                        trial,
                        launch.attempt,
                        ProcessState.EXITED,
                        step=step,
                        points=[point],
                        outcome=Outcome.FINISHED,
                    )
                )
            else:
                self.running[trial] = (launch, step)
                out.append(Observation(trial, launch.attempt, ProcessState.RUNNING, step, [point]))
        return out


def run(
    world: World,
    key: str = "sweep-uid",
    max_ticks: int = 10_000,
    *,
    records: Sequence[TrialRecord] = (),
    range_result: RangeTestResult | None = None,
    until: Callable[[Decision], bool] = lambda decision: decision.done,
) -> Decision:
    """Drive a sweep in the world, the way a runtime does, to its end or to `until`.

    `records` and `range_result`: where a resumed sweep starts from.
    """
    sweep = Sweep(world.spec, key)
    records = list(records)
    for _ in range(max_ticks):
        for obs in world.tick():
            records = update(sweep, records, obs)
        decision = decide(sweep, records, range_result)
        if world.short:
            parked = {r.id for r in decision.records if r.parked_at}
            decision = park_waiting(sweep, decision, world.short)
            for r in decision.records:
                if r.parked_at and r.id not in parked:
                    world.park(r.id)
        range_result = decision.range_result
        records = list(decision.records)
        for stop in decision.stops:
            world.stop(stop.trial)
        for promotion in decision.promotions:
            world.promote(promotion)
        for launch in decision.launches:
            world.launch(launch)
        if until(decision):
            return decision
    raise AssertionError("sweep did not finish")
