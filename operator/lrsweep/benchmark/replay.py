"""Each strategy's sweep of the user's document, replayed on the recorded runs.

The sweep runs through the engine's own loop (`runtime.local.run_sweep`, the loop of
`lrsweep run`) with a backend whose trials follow the recorded curves instead of training:
a trial stopped at step k saw the first k steps of the full run at its rate and seed, as a
deterministic script's trial does. The engine therefore takes the decisions `lrsweep run`
takes on the script, and each sweep is charged the steps its trials would have trained.

A sweep asks for the rates its strategy proposes, and those are rarely on the dense grid.
They are trained, not approximated by the nearest dense rate: when a round proposes rates
that have no recorded run, the replay stops with `MissingRunsError` naming all of them, the
caller trains them, and the replay starts again (it takes milliseconds), going one round
further each time.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from lrsweep.api import LRSweep, LRSweepSpec, Strategy
from lrsweep.benchmark.cache import CurveCache, RangeTestKey
from lrsweep.engine.sweep import Decision, Launch, Sweep
from lrsweep.runtime.following import Curve, CurveBackend
from lrsweep.runtime.local import run_sweep

# The default first: what most users run.
STRATEGIES = (
    Strategy.ADAPTIVE,
    Strategy.GRID,
    Strategy.RANDOM,
    Strategy.ASHA,
    Strategy.RANGE_TEST,
)


class MissingRunsError(Exception):
    """The sweep proposed rates with no recorded full run: (rate, seed) pairs to train."""

    def __init__(self, runs: set[tuple[float, int]]) -> None:
        super().__init__(f"{len(runs)} full run(s) to train")
        self.runs = runs


@dataclass(frozen=True)
class Replayed:
    """What one strategy's sweep chose at one benchmark seed, and what it cost."""

    strategy: Strategy
    seed: int
    rate: float | None
    compute_r: float  # steps its trials trained / the steps of a full run
    trials: int
    note: str  # the engine's caveat about its winner (edge, flat), or why it found none


def with_strategy(spec: LRSweepSpec, strategy: Strategy) -> LRSweepSpec:
    """The document's spec with another strategy, everything else as the user wrote it."""
    data = spec.model_dump(mode="json")
    data["search"]["strategy"] = strategy.value
    return LRSweepSpec.model_validate(data)


def mean_final(
    cache: CurveCache, rate: float, seeds: Iterable[int], spec: LRSweepSpec
) -> float | None:
    """The score of `rate` as the engine scores it, the mean objective of its full runs at
    `seeds`; None unless every one of them reached the budget."""
    finals = []
    for seed in seeds:
        curve = cache.train(rate, seed)
        value = curve.final(spec.objective.metric, spec.budget.steps) if curve else None
        if value is None:
            return None
        finals.append(value)
    return statistics.fmean(finals)


def replay(doc: LRSweep, strategy: Strategy, seed: int, cache: CurveCache) -> Replayed:
    """`doc`'s sweep with `strategy`, its trials' seed s following the runs at `seed` + s.

    Raises MissingRunsError when a round proposes rates the cache lacks."""
    spec = with_strategy(doc.spec, strategy)
    # The sweep's key, as `lrsweep run` gives it: the random strategy draws the same rates.
    sweep = Sweep(spec, key=doc.metadata.uid or doc.metadata.name)

    def train(launch: Launch, until: int) -> Curve:
        curve = cache.train(launch.learning_rate, seed + launch.seed)
        if curve is None:  # `check` asks for every proposed rate before any trial moves
            raise MissingRunsError({(launch.learning_rate, seed + launch.seed)})
        return curve

    def range_test(launch: Launch) -> Curve:
        start, end = launch.range_start or 0.0, launch.range_end or 0.0
        key = RangeTestKey(seed + launch.seed, launch.steps, start, end)
        curve = cache.range_test(key)
        if curve is None:  # the ground truth records one for every benchmark seed first
            raise LookupError(f"no range test recorded for {key}")
        return curve

    def check(decision: Decision) -> None:
        missing = {
            (r.learning_rate, seed + r.seed)
            for r in decision.records
            if r.mode == "train" and cache.train(r.learning_rate, seed + r.seed) is None
        }
        if missing:
            raise MissingRunsError(missing)

    decision = run_sweep(
        sweep,
        CurveBackend(train=train, range_test=range_test),
        interval=0.0,
        on_decision=check,
        sleep=lambda seconds: None,
    )
    steps = sum(r.steps_used for r in decision.records)
    best = decision.best
    note = decision.caveat if best is not None else decision.message
    return Replayed(
        strategy,
        seed,
        best.learning_rate if best else None,
        steps / spec.budget.steps,
        len(decision.records),
        note,
    )
