"""Which trials to run next: one function per strategy.

A strategy proposes trials in rounds. It sees only trials that have ended (plus the range
test's result), so a round's proposals never depend on the timing of the previous one.
Early stopping (ASHA) is separate: `stops_early` says which strategies use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lrsweep.api import (
    RANGE_TEST_MIN_STEPS,
    Goal,
    LRSweepSpec,
    Search,
    Strategy,
    Suggestion,
    TrialPhase,
    Verdict,
)
from lrsweep.engine import space
from lrsweep.engine.asha import most_kept, rung_steps
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.trials import Mode, TrialRecord

# adaptive's first round: `candidates` rates spanning ADAPTIVE_DECADES below ADAPTIVE_TOP x
# the range test's limit (where its loss blew up or climbed back above the start). A full run
# at a constant or decaying rate tolerates less than the range test's sweeping rate, and how
# far below the limit the best rate sits depends on the optimizer: 0.3-1.8 decades for SGD,
# up to 2.5 for Adam on the search benchmark's tuning tasks (benchmarks/results/suite).
# Later rounds probe past an edge or between the best and its better neighbour (`adaptive`).
ADAPTIVE_TOP = 0.4
ADAPTIVE_DECADES = 2.0
# Refinement halves the spacing around the best rate until its neighbours are this close.
FINEST_RATIO = math.sqrt(2)
# Refinement proposes a rate only while the sweep's compute, counting each proposal as one
# full run, stays within this many full runs (R). The first round (range test, candidates,
# FINALISTS of them to the full budget) costs about 3.6 R, which leaves one refinement trial:
# on the search benchmark's tuning tasks, 4 candidates and that trial found better rates
# than 5 candidates and none (benchmarks/results/suite).
REFINE_BUDGET = 5.0
# adaptive trains at least this many trials to the full budget and keeps the best of them
# (after an informative range test: see `finalists`).
FINALISTS = 3


@dataclass(frozen=True)
class Proposal:
    learning_rate: float
    seed: int
    mode: Mode = "train"


@dataclass(frozen=True)
class Context:
    spec: LRSweepSpec
    key: str  # seeds random choices: the sweep's uid (or name, locally)
    records: Sequence[TrialRecord]
    range_result: RangeTestResult | None
    # Trials that finished but still await their early-stopping comparison.
    undecided: frozenset[str] | set[str] = frozenset()

    @property
    def train(self) -> list[TrialRecord]:
        return [r for r in self.records if r.mode == "train"]

    def final_scores(self) -> dict[float, list[float]]:
        """Objective at the full budget per rate, for trials that ran their whole budget."""
        full = self.spec.budget.steps
        scores: dict[float, list[float]] = {}
        for r in self.train:
            if r.phase is TrialPhase.SUCCEEDED and full in r.rungs and r.id not in self.undecided:
                scores.setdefault(r.learning_rate, []).append(r.rungs[full])
        return scores


@dataclass(frozen=True)
class Best:
    learning_rate: float
    score: float
    trial: str


def best_rate(ctx: Context) -> Best | None:
    """The rate with the best mean objective over its seeds, all of them complete."""
    seeds = ctx.spec.search.seeds
    sign = 1.0 if ctx.spec.objective.goal is Goal.MINIMIZE else -1.0
    complete = {rate: sum(v) / len(v) for rate, v in ctx.final_scores().items() if len(v) >= seeds}
    if not complete:
        return None
    rate = min(complete, key=lambda r: (sign * complete[r], r))
    full = ctx.spec.budget.steps
    trial = min(
        (
            r
            for r in ctx.train
            if r.learning_rate == rate
            and r.phase is TrialPhase.SUCCEEDED
            and full in r.rungs
            and r.id not in ctx.undecided
        ),
        key=lambda r: (sign * r.rungs[full], r.id),
    )
    return Best(rate, complete[rate], trial.id)


def _each_seed(rates: Sequence[float], seeds: int) -> list[Proposal]:
    return [Proposal(rate, seed) for rate in rates for seed in range(seeds)]


def _first_rates(search: Search) -> list[float]:
    if search.values is not None:
        return sorted({space.tidy(v) for v in search.values})
    return space.log_grid(search.min, search.max, search.candidate_count)


def edge_note(ctx: Context, best: Best) -> str:
    """A caveat when the best rate is the lowest or highest rate tried ('' when bracketed).

    A better rate may then lie beyond it, which the sweep cannot tell.
    """
    tried = sorted({r.learning_rate for r in ctx.train})
    rate = best.learning_rate
    if len(tried) < 2 or tried[0] < rate < tried[-1]:
        return ""
    search = ctx.spec.search
    if rate == tried[0]:
        side, field, at_bound = "lowest", "search.min", rate <= search.min * FINEST_RATIO
    else:
        side, field, at_bound = "highest", "search.max", rate * FINEST_RATIO >= search.max
    if at_bound:
        return f"the best rate is the {side} tried, at the end of the search range: move {field}"
    rounds = max(r.round for r in ctx.train)
    if search.strategy is not Strategy.ADAPTIVE:
        stopped = "try rates beyond it (search.values, or search.min and search.max)"
    elif rounds >= search.refineRounds:
        stopped = "raise search.refineRounds"
    else:
        stopped = (
            f"refinement stopped at its compute budget ({REFINE_BUDGET:g} full runs per seed): "
            "sweep again with search.min and search.max around it"
        )
    return f"the best rate is the {side} tried, so a better one may lie beyond it; {stopped}"


def flat_note(ctx: Context, best: Best) -> str:
    """A caveat when the winning trial's loss barely moved (verdict plateau): it won because
    every faster rate did worse, not because it trained ('' otherwise)."""
    trial = next((r for r in ctx.records if r.id == best.trial), None)
    if trial is None or trial.verdict is not Verdict.PLATEAU:
        return ""
    return (
        f"the best trial's loss barely moved ({trial.reason}): it may have won only because "
        "the faster rates did worse; check the trainer, or search higher rates"
    )


def _round_done(ctx: Context) -> bool:
    return all(r.terminal for r in ctx.records) and not ctx.undecided


def grid(ctx: Context) -> list[Proposal]:
    if ctx.records:
        return []
    search = ctx.spec.search
    return _each_seed(_first_rates(search), search.seeds)


def random(ctx: Context) -> list[Proposal]:
    if ctx.records:
        return []
    search = ctx.spec.search
    if search.values is not None:
        return _each_seed(_first_rates(search), search.seeds)
    rates = space.log_uniform(search.min, search.max, search.candidate_count, seed=ctx.key)
    return _each_seed(rates, search.seeds)


def asha(ctx: Context) -> list[Proposal]:
    """The grid's candidates, launched in spread order; early stopping does the rest."""
    if ctx.records:
        return []
    search = ctx.spec.search
    return _each_seed(space.spread_order(_first_rates(search)), search.seeds)


def _range_test() -> list[Proposal]:
    return [Proposal(0.0, 0, "range-test")]


def range_test(ctx: Context) -> list[Proposal]:
    """One range test, then full training at its suggestion."""
    if not ctx.records:
        return _range_test()
    if ctx.train or ctx.range_result is None or not _round_done(ctx):
        return []
    result = ctx.range_result
    rate = result.valley if ctx.spec.search.suggestion is Suggestion.VALLEY else result.steepest
    search = ctx.spec.search
    rate = space.tidy(min(max(rate, search.min), search.max))
    return _each_seed([rate], search.seeds)


def adaptive_bounds(result: RangeTestResult | None, low: float, high: float) -> tuple[float, float]:
    """The range adaptive's first round searches after a range test.

    Anchored at the range test's limit, or, when its loss never blew up or climbed back, at
    the rate where the loss was lowest. Without a range test, or with one whose loss hardly
    descended (it said nothing: `RangeTestResult.informative`), the whole user range is
    searched.
    """
    if result is None or not result.informative:
        return low, high
    limits = [x for x in (result.divergence, result.ceiling) if x is not None]
    anchor = min(limits) if limits else result.minimum
    hi = min(high, anchor * ADAPTIVE_TOP)
    lo = max(low, hi / 10**ADAPTIVE_DECADES)
    if lo >= hi:
        return low, high
    return lo, hi


def _standing(ctx: Context, rate: float, rung: int | None = None) -> tuple[int, float]:
    """How far the best trial at `rate` got, as a sort key (lower is better): the deepest
    rung it recorded (or `rung`, where given), then its objective there."""
    sign = 1.0 if ctx.spec.objective.goal is Goal.MINIMIZE else -1.0
    keys = []
    for r in ctx.train:
        if r.learning_rate != rate or not r.rungs:
            continue
        at = max(r.rungs) if rung is None else rung
        if at in r.rungs:
            keys.append((-at, sign * r.rungs[at]))
    return min(keys, default=(0, math.inf))


def _better_neighbour(ctx: Context, rate: float, tried: Sequence[float]) -> float | None:
    """Of the rates either side of `rate`, the one that did better (None at an edge).

    Between two neighbours, the optimum most likely lies on the side of the better one.
    They are compared at the deepest rung both recorded: a neighbour that diverged after a
    rung it led at (a rate just below the cliff, where such schedules often peak) is not
    outranked by a slow one merely for having run longer."""
    i = tried.index(rate)
    if i == 0 or i == len(tried) - 1:
        return None
    lower, upper = tried[i - 1], tried[i + 1]

    def reached(at: float) -> set[int]:
        return {step for r in ctx.train if r.learning_rate == at for step in r.rungs}

    common = reached(lower) & reached(upper)
    rung = max(common) if common else None
    return lower if _standing(ctx, lower, rung) <= _standing(ctx, upper, rung) else upper


def _walked_past_edge(ctx: Context, rate: float) -> bool:
    """`rate` came from a step past the edge of the rates tried before it (and won)."""
    first = min(r.round for r in ctx.train if r.learning_rate == rate)
    earlier = [r.learning_rate for r in ctx.train if r.round < first]
    return bool(earlier) and not min(earlier) <= rate <= max(earlier)


def adaptive(ctx: Context) -> list[Proposal]:
    """Range test -> ASHA over log-spaced candidates -> refinement rounds.

    Each refinement round probes half a spacing from the best rate towards where the
    optimum most likely is: past the edge when the best is the lowest or highest tried
    (`space.beyond_edge`, which walks on at the full spacing while the steps keep winning),
    else the log-midpoint towards its better neighbour first, then the other one, while
    they are more than FINEST_RATIO apart. Its trials face every earlier trial at the
    rungs, so a poor one costs only the steps to its first comparison.
    """
    search = ctx.spec.search
    if not ctx.records:
        return _range_test() if search.values is None else grid(ctx)
    if not _round_done(ctx):
        return []
    if not ctx.train:
        lo, hi = adaptive_bounds(ctx.range_result, search.min, search.max)
        # The most promising rates first: where the round is not judged as one cohort (see
        # `cohort`), they set a high bar early, so early stopping cuts the poor ones at
        # their first comparison.
        result = ctx.range_result
        center = result.valley if result and result.informative else math.sqrt(lo * hi)
        rates = space.nearest_first(space.log_grid(lo, hi, search.candidate_count), center)
        return _each_seed(rates, search.seeds)
    rounds = max(r.round for r in ctx.train)
    if rounds >= search.refineRounds:
        return []
    best = best_rate(ctx)
    tried = sorted({r.learning_rate for r in ctx.train})
    if best is None:
        # Every rate diverged or failed: look below the lowest one tried.
        lower = space.tidy(tried[0] / 4)
        return _each_seed([lower], search.seeds) if lower >= search.min else []
    walking = _walked_past_edge(ctx, best.learning_rate)
    rates = space.nearest_first(
        space.beyond_edge(best.learning_rate, tried, search.min, search.max, walking=walking),
        best.learning_rate,
    )
    if not rates:
        toward = _better_neighbour(ctx, best.learning_rate, tried)
        rates = space.bracket(best.learning_rate, tried, FINEST_RATIO, toward)
    best_trial = next(r for r in ctx.train if r.id == best.trial)
    if best_trial.verdict is Verdict.TOO_SLOW:
        doubled = space.doubled(best.learning_rate, search.max, tried)
        if doubled is not None and doubled not in rates:
            rates.append(doubled)
    # Full runs per seed the search has trained so far; each proposal counts as one more.
    # Steps trained again (a park, a retry, a restart) do not count, so what the sweep
    # decides does not depend on how many GPUs it found or how often a pod was lost.
    spent = sum(r.steps_reached for r in ctx.records) / ctx.spec.budget.steps / search.seeds
    room = max(0, math.floor(REFINE_BUDGET - spent + 1e-9))
    return _each_seed(sorted(rates[:room]), search.seeds)


PROPOSERS: dict[Strategy, Callable[[Context], list[Proposal]]] = {
    Strategy.GRID: grid,
    Strategy.RANDOM: random,
    Strategy.RANGE_TEST: range_test,
    Strategy.ASHA: asha,
    Strategy.ADAPTIVE: adaptive,
}


def rungs(spec: LRSweepSpec) -> list[int]:
    """Steps at which early stopping compares trials.

    adaptive skips ASHA's shortest rung and compares first at minSteps x reductionFactor:
    among near-best rates, scores at minSteps barely predict final ones (the benchmark's
    short-horizon check: rank correlation about 0 on two of its five tasks), so a short
    first rung cuts the eventual best.
    """
    steps = rung_steps(spec.budget)
    if spec.search.strategy is Strategy.ADAPTIVE and len(steps) > 1:
        return steps[1:]
    return steps


def finalists(spec: LRSweepSpec, range_result: RangeTestResult | None = None) -> int:
    """How many trials early stopping lets through every rung, and so to the full budget.

    adaptive's finalists are for rates near the optimum, whose full-budget scores differ by
    less than their noise. After a range test that said nothing, its first round spans the
    whole search range, decades apart, where ASHA's own cut is safe; the full runs saved go
    to refinement (on the search-range benchmark's tuning spans, 295 of 360 cases within
    tolerance instead of 288, and 37 above +15% instead of 46: benchmarks/results/spans-*).
    """
    if spec.search.strategy is not Strategy.ADAPTIVE:
        return 1
    if range_result is not None and not range_result.informative:
        return 1
    return FINALISTS


def cohort(spec: LRSweepSpec) -> int:
    """How many of the first trials early stopping judges together, each against all others.

    The first launch group (`parallelism` trials) at least. adaptive judges its whole first
    round together, as successive halving would, as far as that cannot deadlock: a member
    waits at a rung for members still queued, so the trials that can be paused at once (at
    most `most_kept` rates at the first comparison, finalists included, each with its seeds)
    must leave a slot free. Without that, the members launched after the first group face
    only the trials before them, and often pass where the whole round would have cut them.
    """
    search = spec.search
    if search.strategy is not Strategy.ADAPTIVE:
        return search.parallelism
    comparisons = rungs(spec)
    if not comparisons:
        return search.parallelism
    eta = spec.budget.reductionFactor
    rates = len(_first_rates(search))
    while rates > 1 and most_kept(rates, eta, FINALISTS) * search.seeds >= search.parallelism:
        rates -= 1
    return max(search.parallelism, rates * search.seeds)


def stops_early(strategy: Strategy) -> bool:
    return strategy in (Strategy.ASHA, Strategy.ADAPTIVE)


def range_test_steps(spec: LRSweepSpec) -> int:
    """budget.rangeTestSteps, or minSteps: at least 100, at most adaptive's first comparison.

    The floor keeps the sweep from rising too fast to read (100 steps over 5 decades); the
    cap keeps the range test from costing more than one first-round candidate does before
    its first comparison (minSteps x reductionFactor), which matters for short budgets.
    """
    budget = spec.budget
    if budget.rangeTestSteps is not None:
        return budget.rangeTestSteps
    first_comparison = budget.minSteps * budget.reductionFactor
    return min(max(RANGE_TEST_MIN_STEPS, budget.minSteps), first_comparison, budget.steps)
