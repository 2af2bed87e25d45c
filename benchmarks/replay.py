"""Replay `adaptive` on the recorded ground truth: an estimate in seconds, not in two hours.

    python -m benchmarks.replay [--shifts 6] [--task NAME ...] [--results DIR]

The engine is the real one (`run_sweep`, `decide`, the default settings of the benchmarks);
only the trials are replayed. Each trial follows the full run recorded at the nearest rate,
same task and seed (the dense grid, the noise floor's nudged rates, the rates chosen at
other seeds and the ceiling's six rates around the optimum, all under
benchmarks/results/ground-truth): exactly its values at the rungs
and at the full budget, its divergence, and in between a curve that falls most of the way
early (so no replayed trial looks still too slow, and adaptive's 2x step for a too-slow
best is not replayed). The range test is not rerun: the suggestions recorded by the last
run of the benchmarks stand in (search-efficiency.json's details for seeds 0-4,
holdout.json's cases for seeds 5-9, and those of every holdout-S1-....json that
`benchmarks.holdout --seed S` wrote), and its steps are counted.

`--results benchmarks/results/portable` replays the runs recorded on portable numerics
(`--portable-numerics`): the same on any x86 CPU, so an estimate anyone can check. The
numerics are read from that directory's search-efficiency.json.

So it estimates; the benchmarks decide. Dense rates are 1.4x apart, so a replayed trial's
rate is up to 1.18x off its own, and near the optimum a rate 2% away scores differently
(the noise floor). `--shifts N` replays every case N times with the range test's
suggestions scaled across one dense step, so that the estimate does not hang on where the
candidates happen to fall between dense rates; the share within target is averaged over
them. Scored as in the benchmarks: regret against the best dense rate, target max(1%, the
task's seed sd over its seed group).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.holdout import STEM as HOLDOUT
from benchmarks.parallelism import LABEL, SEARCH
from benchmarks.search_efficiency import (
    FULL,
    RESULTS,
    STRATEGY_PARALLELISM,
    BenchTask,
    RatePoint,
    engine_fingerprint,
    load_nudged,
    load_other_seeds,
    load_truth,
    portable,
    ran_portable,
    sweep_doc,
    within_target,
)
from lrsweep.api import TrialPhase
from lrsweep.engine import strategies
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.sweep import Launch, Sweep
from lrsweep.engine.trials import Observation, Outcome, ProcessState, TrialRecord
from lrsweep.engine.verdict import Point
from lrsweep.runtime.following import FollowingBackend
from lrsweep.runtime.local import run_sweep

DENSE_STEP = 10 ** (5 / 34)  # 35 rates over 5 decades
# Before its first rung a replayed curve starts this far above the first rung's value.
START = 2.0


def nearest(points: Sequence[RatePoint], lr: float) -> RatePoint:
    return min(points, key=lambda p: (abs(math.log(p.lr / lr)), p.lr))


def value_at(run: RatePoint, step: int) -> float:
    """The replayed objective of `run` at `step`: exact at its recorded steps, infinite once
    a run that did not finish stopped, in between falling most of the way early."""
    if run.final is None and step >= run.steps_used:
        return math.inf
    anchors = sorted(run.rungs.items())
    if not anchors:
        return math.inf
    previous = (0, START * anchors[0][1])
    for at, value in anchors:
        if step <= at:
            start, before = previous
            t = (step - start) / (at - start)
            share = 1 - (1 - t) ** 3
            if before <= 0 or value <= 0:
                return before + (value - before) * share
            return float(before * (value / before) ** share)
        previous = (at, value)
    return previous[1]


@dataclass
class ReplayBackend(FollowingBackend):
    """Trials that follow recorded runs (the run recorded at the nearest rate)."""

    points: Sequence[RatePoint]

    def launch(self, launch: Launch) -> None:
        if launch.mode != "train":
            raise ValueError(f"the replay has no curve for a {launch.mode} trial")
        super().launch(launch)

    def advance(self, launch: Launch, step: int) -> Observation:
        step = min(step + launch.eval_every, launch.steps)
        value = value_at(nearest(self.points, launch.learning_rate), step)
        point = Point(step, {"val_loss": value, "train_loss": value})
        if not math.isfinite(value):
            outcome: Outcome | None = Outcome.DIVERGED
        elif step >= launch.steps:
            outcome = Outcome.FINISHED
        else:
            outcome = None
        state = ProcessState.RUNNING if outcome is None else ProcessState.EXITED
        return Observation(launch.trial, launch.attempt, state, step, [point], outcome=outcome)


@dataclass(frozen=True)
class Replayed:
    task: str
    seed: int
    shift: float
    chosen_lr: float | None
    regret: float | None
    compute_r: float
    within: bool


def range_result(suggestions: Mapping[str, float | None], scale: float) -> RangeTestResult:
    """The recorded range test's suggestions, every rate scaled by `scale`."""

    def rate(name: str) -> float:
        value = suggestions[name]
        if value is None:
            raise ValueError(f"the recorded range test has no {name}")
        return value * scale

    def limit(name: str) -> float | None:
        value = suggestions.get(name)
        return None if value is None else value * scale

    return RangeTestResult(
        steepest=rate("steepest"),
        valley=rate("valley"),
        minimum=rate("minimum"),
        divergence=limit("divergence"),
        ceiling=limit("ceiling"),
    )


def replay(
    task: BenchTask,
    seed: int,
    runs: Sequence[RatePoint],
    dense_best: float,
    recorded_range: Mapping[str, float | None],
    seed_sd: float,
    shift: float = 1.0,
) -> Replayed:
    """One adaptive sweep of `task` at `seed`, its range test's suggestions scaled by `shift`."""
    doc = sweep_doc(task, seed, LABEL, SEARCH)
    spec = doc.spec
    sweep = Sweep(spec, key=doc.metadata.name)
    tested = TrialRecord(
        "t000",
        0.0,
        0,
        mode="range-test",
        phase=TrialPhase.SUCCEEDED,
        attempts=1,
        queued=False,
        step=strategies.range_test_steps(spec),
    )
    decision = run_sweep(
        sweep,
        ReplayBackend(runs),
        sleep=lambda seconds: None,
        records=[tested],
        known_range=range_result(recorded_range, shift),
    )
    compute = sum(r.steps_used for r in decision.records) / spec.budget.steps
    if decision.best is None:
        return Replayed(task.name, seed, shift, None, None, compute, within=False)
    score = nearest(runs, decision.best.learning_rate).final
    regret = None if score is None else score / dense_best - 1
    within = within_target(regret, seed_sd)
    return Replayed(task.name, seed, shift, decision.best.learning_rate, regret, compute, within)


RangeTest = Mapping[str, float | None]


def recorded(results: Path, name: str) -> Any:
    """A benchmark's result file, or an exit that says which command writes it."""
    path = results / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        module = name.replace("-", "_")
        raise SystemExit(
            f"cannot read {path} ({error}); run `python -m benchmarks.{module} --jobs 2` first, "
            "or pass --results DIR"
        ) from None


def seed_label(seeds: Sequence[int], source: str) -> str:
    low, high = min(seeds), max(seeds)
    return f"{low}-{high} ({source})" if high > low else f"{low} ({source})"


@dataclass(frozen=True)
class Recorded:
    """The last runs of the benchmarks whose range tests and results the replay uses: the
    search-efficiency benchmark's and every holdout run's (holdout.json for seeds 5-9,
    holdout-S1-....json for seeds named with --seed)."""

    benchmark: Any  # search-efficiency.json
    holdouts: dict[str, Any]  # holdout*.json by file stem, holdout.json first

    @classmethod
    def load(cls, results: Path) -> Recorded:
        stems = sorted(
            (p.stem for p in results.glob(f"{HOLDOUT}*.json")), key=lambda s: (s != HOLDOUT, s)
        )
        return cls(
            recorded(results, "search-efficiency"),
            {stem: recorded(results, stem) for stem in stems},
        )

    def tasks(self, names: Sequence[str] | None = None) -> list[BenchTask]:
        """The benchmark's tasks (those named, or all) on the numerics the runs used: the
        ground truth of portable runs is cached under keys of its own."""
        settings = FULL
        if ran_portable(self.benchmark):
            settings = portable(settings)
        return [t for t in settings.tasks if not names or t.name in names]

    @property
    def seed_groups(self) -> dict[str, tuple[int, ...]]:
        """The seeds of each recorded run, labelled with the run; a seed in several runs
        counts in the first."""
        groups: dict[str, tuple[int, ...]] = {}
        seen: set[int] = set()
        runs = {"search-efficiency": self.benchmark["runs"]}
        runs |= {stem: holdout["cases"] for stem, holdout in self.holdouts.items()}
        for source, rows in runs.items():
            seeds = tuple(sorted({r["seed"] for r in rows} - seen))
            if seeds:
                groups[seed_label(seeds, source)] = seeds
                seen |= set(seeds)
        return groups


def recorded_inputs(
    last: Recorded,
) -> tuple[dict[tuple[str, int], RangeTest], dict[tuple[str, int], float]]:
    """Range tests and seed sds of the last benchmark runs, per (task, seed)."""
    ranges: dict[tuple[str, int], RangeTest] = {}
    sds: dict[tuple[str, int], float] = {}
    benchmark = last.benchmark
    for run in benchmark["runs"]:
        if run["strategy"] == LABEL:
            key = run["task"], run["seed"]
            ranges[key] = benchmark["details"][f"{run['task']}/s{run['seed']}/{LABEL}"][
                "range_test"
            ]
            sds[key] = run["seed_sd"]
    for holdout in last.holdouts.values():
        for case in holdout["cases"]:
            key = case["task"], case["seed"]
            if key in sds:
                continue
            if case.get("range_test") is not None:
                ranges[key] = case["range_test"]
            sds[key] = holdout["seed_sd"][case["task"]]
    return ranges, sds


def recorded_runs(
    results: Path, task: BenchTask, seed: int
) -> tuple[list[RatePoint], float] | None:
    """Every full run recorded for (task, seed), and the best dense score."""
    cache = results / "ground-truth"
    truth = load_truth(cache, task, seed, FULL)
    if truth is None:
        return None
    points = list(truth.points)
    for extra in (
        load_nudged(cache, task, truth),
        load_other_seeds(cache, task, seed),
        load_other_seeds(cache, task, seed, "ceiling"),
    ):
        points += [] if extra is None else extra.points
    return points, truth.best[1]


def shifts(count: int) -> list[float]:
    """`count` scales spread evenly over one dense step, centred on 1."""
    return [DENSE_STEP ** ((i + 0.5) / count - 0.5) for i in range(count)]


def run_all(
    results: Path, last: Recorded, tasks: Sequence[BenchTask], shift_count: int
) -> tuple[list[Replayed], list[str]]:
    ranges, sds = recorded_inputs(last)
    done: list[Replayed] = []
    missing: list[str] = []
    for task in tasks:
        for seed in sorted({s for group in last.seed_groups.values() for s in group}):
            found = recorded_runs(results, task, seed)
            if found is None or (task.name, seed) not in ranges:
                missing.append(f"{task.name} s{seed}")
                continue
            runs, best = found
            for shift in shifts(shift_count):
                done.append(
                    replay(
                        task, seed, runs, best, ranges[task.name, seed], sds[task.name, seed], shift
                    )
                )
    return done, missing


def summary(replayed: Sequence[Replayed], seed_groups: Mapping[str, tuple[int, ...]]) -> list[str]:
    lines = ["| seeds | cases | within target | median compute |", "|---|---|---|---|"]
    groups = {**seed_groups, "pooled": tuple(s for g in seed_groups.values() for s in g)}
    for label, seeds in groups.items():
        rows = [r for r in replayed if r.seed in seeds]
        if not rows:
            continue
        cases = len({(r.task, r.seed) for r in rows})
        share = sum(r.within for r in rows) / len(rows)
        median = statistics.median(r.compute_r for r in rows)
        lines.append(f"| {label} | {cases} | {share:.0%} | {median:.2f} R |")
    return lines


def recorded_shares(last: Recorded) -> str:
    """What the benchmarks measured, and with which engine: the replay's calibration."""
    engine = engine_fingerprint()["engine_sha256"]
    benchmark = last.benchmark
    lines = [
        f"Measured by the benchmarks (engine code now {engine}):",
        f"- seeds {seed_label([r['seed'] for r in benchmark['runs']], 'search-efficiency')}: "
        f"{benchmark['summary'][LABEL]['within_target_share']:.0%} "
        f"(engine code {benchmark['engine']['engine_sha256']})",
    ]
    for stem, holdout in last.holdouts.items():
        at_default = holdout["summary"]["per_parallelism"][str(STRATEGY_PARALLELISM)]
        lines.append(
            f"- seeds {seed_label([c['seed'] for c in holdout['cases']], stem)}: "
            f"{at_default['within_share']:.0%} "
            f"(engine code {holdout['engine']['engine_sha256']})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shifts", type=int, default=6, help="replays per case (default 6)")
    parser.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="recorded benchmark results")
    args = parser.parse_args(argv)
    if args.shifts < 1:
        parser.error("--shifts must be at least 1")
    known = [t.name for t in FULL.tasks]
    unknown = sorted(set(args.task or ()) - set(known))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(known)}")
    last = Recorded.load(args.results)
    tasks = last.tasks(args.task)
    replayed, missing = run_all(args.results, last, tasks, args.shifts)
    if missing:
        print(f"no recorded runs or range test for: {', '.join(missing)}")
    if not replayed:
        raise SystemExit("nothing to replay: run the benchmarks first")
    print(f"adaptive replayed {args.shifts}x per case on recorded runs (an estimate):\n")
    print("\n".join(summary(replayed, last.seed_groups)))
    print("\n" + recorded_shares(last))


if __name__ == "__main__":
    main()
