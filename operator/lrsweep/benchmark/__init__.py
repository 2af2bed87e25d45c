"""`lrsweep benchmark sweep.yaml`: how well each strategy finds the rate of the user's trial.

1. Ground truth (`groundtruth`): full runs of the document's trial at dense rates over its
   search range, a range test, each a local process as `lrsweep run` launches it, every
   evaluation recorded, cached in the current directory (`cache`) so that a second
   benchmark, or one interrupted, trains only what is missing.
2. Every strategy's sweep of the document (`replay.STRATEGIES`) through the engine's own
   loop on those runs; rates a sweep proposes off the dense grid are trained too.
3. Each pick scored by its full-run score against the dense best (`report`).

Benchmark seed s runs every trial at seed s (plus the trial's own seed index where the
document's `search.seeds` trains several): LRSWEEP_SEED, which the reporting API's
`session.seed` reads. A script that does not seed itself from it is measured on whatever
randomness it has, and two runs at one rate may then differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lrsweep.api import LRSweep, SpecError
from lrsweep.benchmark.cache import ROOT, CurveCache, cache_key, dense_rates, digest
from lrsweep.benchmark.groundtruth import GroundTruth, range_test_key
from lrsweep.benchmark.replay import STRATEGIES, MissingRunsError, Replayed, mean_final, replay
from lrsweep.benchmark.report import Report, Row, Truth, best_of, regret

DEFAULT_RATIO = math.sqrt(2)

__all__ = ["DEFAULT_RATIO", "ROOT", "GroundTruthError", "Report", "benchmark", "cache_directory"]


# Trains the full runs at (seed, rates) that are missing, showing `description` meanwhile.
TrainRuns = Callable[[str, int, Sequence[float]], None]


class GroundTruthError(Exception):
    """No dense rate finished its budget: there is nothing to score the strategies against."""


def cache_directory(doc: LRSweep, root: Path = ROOT) -> Path:
    """Where the curves of `doc`'s trial program and budget are kept."""
    return root / digest(cache_key(doc, Path.cwd()))


def benchmark(
    doc: LRSweep,
    *,
    document: str,
    seeds: int,
    ratio: float,
    jobs: int,
    console: Console,
    root: Path = ROOT,
    command: str = "",
) -> Report:
    """Every strategy on `doc`'s trial at benchmark seeds 0..seeds-1 (see the module's doc).

    Raises SpecError where the trial cannot run (exit 2), GroundTruthError where it never
    finishes its budget, and KeyboardInterrupt on Ctrl-C, its trial processes stopped and
    every finished run kept."""
    key = cache_key(doc, Path.cwd())
    search = doc.spec.search
    dense = dense_rates(search.min, search.max, ratio)
    cases = tuple(range(seeds))
    per_rate = search.seeds  # the document's own seeds per rate: its sweeps train them all
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with CurveCache(root / digest(key), key) as cache, progress:
        ground = GroundTruth(doc, cache, jobs=jobs)

        def say(text: str) -> None:
            console.print(text, markup=False, highlight=False, soft_wrap=True)

        def train(what: str, seed: int, rates: Sequence[float]) -> None:
            needed = len({r for r in rates if cache.train(r, seed) is None})
            if needed:
                say(f"seed {seed}: training {needed} full run(s) {what}, {jobs} at once")
                task = progress.add_task(f"seed {seed}", total=needed)
                ground.full_runs(seed, rates, on_run=lambda: progress.advance(task))
                progress.remove_task(task)

        for seed in cases:
            if cache.range_test(range_test_key(doc, seed)) is None:
                say(f"seed {seed}: a range test")
            ground.range_test(seed)
        for seed in sorted({s + i for s in cases for i in range(per_rate)}):
            train(f"at the {len(dense)} dense rates", seed, dense)
        truths = {s: _truth(doc, ground, dense, s) for s in cases}
        replayed = _replay_all(doc, cache, cases, train)
    seeds_of = {s: tuple(range(s, s + per_rate)) for s in cases}
    rows = tuple(_row(doc, cache, r, truths[r.seed], seeds_of[r.seed]) for r in replayed)
    return Report(
        document=document,
        name=doc.metadata.name,
        strategy=search.strategy.value,
        metric=doc.spec.objective.metric,
        goal=doc.spec.objective.goal,
        steps=doc.spec.budget.steps,
        search=(search.min, search.max),
        ratio=ratio,
        dense_rates=tuple(dense),
        seeds=cases,
        cache=str(cache.directory),
        runs_trained=ground.trained,
        runs_recorded=len(cache),
        truths=tuple(truths[s] for s in cases),
        rows=rows,
        command=command,
    )


def _replay_all(
    doc: LRSweep, cache: CurveCache, cases: Sequence[int], train: TrainRuns
) -> list[Replayed]:
    """Every strategy at every seed, training the rates their sweeps propose until none
    lacks a run (each pass goes at least one round further)."""
    while True:
        replayed: list[Replayed] = []
        missing: set[tuple[float, int]] = set()
        for seed in cases:
            for strategy in STRATEGIES:
                try:
                    replayed.append(replay(doc, strategy, seed, cache))
                except MissingRunsError as more:
                    missing |= more.runs
        if not missing:
            return replayed
        for seed in sorted({s for _, s in missing}):
            rates = [r for r, s in missing if s == seed]
            train("at rates the strategies propose", seed, rates)


def _truth(doc: LRSweep, ground: GroundTruth, dense: Sequence[float], seed: int) -> Truth:
    """The dense ground truth at benchmark seed `seed`; an error when no rate finished."""
    spec = doc.spec
    seeds = range(seed, seed + spec.search.seeds)
    scores = {rate: mean_final(ground.cache, rate, seeds, spec) for rate in dense}
    best = best_of(scores, spec.objective.goal)
    if best is not None:
        return Truth(seed, best[0], best[1], scores)
    runs = [c for r in dense for s in seeds if (c := ground.cache.train(r, s)) is not None]
    failed = [c.failure for c in runs if c.failure]
    if failed and len(failed) == len(runs):
        raise SpecError(
            f"every full run failed, the last with: {failed[-1]}; the trials' logs are in "
            f"{ground.logs}"
        )
    diverged = sum(c.diverged for c in runs)
    raise GroundTruthError(
        f"no rate from {spec.search.min:g} to {spec.search.max:g} finished its budget at seed "
        f"{seed} ({diverged} of {len(runs)} runs diverged, {len(failed)} failed): there is "
        "no best rate to score the strategies against; search lower rates (search.max), or "
        f"check the trials' logs in {ground.logs}"
    )


def _row(doc: LRSweep, cache: CurveCache, run: Replayed, truth: Truth, seeds: Sequence[int]) -> Row:
    score = None if run.rate is None else mean_final(cache, run.rate, seeds, doc.spec)
    return Row(
        strategy=run.strategy.value,
        seed=run.seed,
        rate=run.rate,
        score=score,
        regret=regret(score, truth.best_score, doc.spec.objective.goal),
        compute_r=run.compute_r,
        trials=run.trials,
        note=run.note,
    )
