"""Search efficiency of every strategy against a dense ground-truth grid.

    .venv/bin/python -m benchmarks.search_efficiency [--quick] [--jobs N] [--out DIR]

(To benchmark your own training script, run `lrsweep benchmark sweep.yaml`.)

For each task (built-in trainer tasks with different models, optimizers and schedules, and a
script on the reporting API, trainer/examples/custom_train.py) and each seed, everything
runs through the local
runtime (`lrsweep.runtime.local.run_local`, the code path of `lrsweep run`):

1. the ground truth: ONE grid sweep over a dense log grid (35 rates spaced by 10^(5/34),
   finer than sqrt(2), over 5 decades), every rate trained for the full budget; cached per
   (task configuration hash, seed) in OUT/ground-truth/full-runs.json.xz (benchmarks.archive:
   one file for every full run the benchmarks train) so reruns are cheap; a cached one is
   checked by repeating one of its runs per task, with a warning where this machine scores
   it differently (runs are not bitwise the same on every machine);
2. the noise floor: full runs at each seed's dense-best rate x1.02 and /1.02 (cached too):
   what a search that knew the best rate to within 2% would score;
3. each strategy as a user would write it: `grid` (8 log-spaced rates), `random` with
   ceil(2 x adaptive's compute) full-budget rates, `asha` (16 rates, early stopping),
   `rangeTest` with the valley and with the steepest suggestion, and `adaptive` with its
   defaults (the default strategy: what is being measured);
4. other seeds: every chosen rate trained fully at the task's other seeds too (cached, the
   dense grid reused), so the report can say whether a rate is good across seeds or was
   lucky at its own (not the benchmark's target; a user's final run uses a new seed).

Per (task, seed, strategy) it records the chosen rate, the regret (score of the chosen rate
at that seed / best score of the dense grid at that seed - 1; best / score - 1 for a metric
maximized), the compute in R (training steps of every trial, range test included, / steps
of one full run) and the seed spread of the grid's best score. Writes
OUT/search-efficiency.json, .md and .png (OUT defaults to benchmarks/results; with --quick,
to out/search-efficiency-quick).

Trials are deterministic for a (task, rate, seed, steps, evalEvery) on one machine (torch on
one thread), so the score a strategy reports for its winner is that rate's full-run score at
that seed. Across machines some runs differ in their last digits, which a chaotic run can
amplify: digits-cnn at 0.01719, seed 1, scored 0.05540 on the machine that recorded the
committed ground truth and 0.05573 on a later one. A sweep's own seeds are
0..seeds-1; a benchmark case at seed s passes `--seed s` to the built-in trainer (flags win
over the environment) and sets LRSWEEP_SEED=s in the custom script's container env.

Strategy sweeps use the resource's default parallelism (4): early stopping judges the first
launch group (parallelism trials) as a cohort, so parallelism is part of the strategy being
measured, not a machine setting. `--jobs N` sets the ground-truth sweeps' parallelism (they
run one after the other) and how many strategy sweeps run at once. Decisions depend on the
curves alone, never on timing, so --jobs changes wall time only.

Ctrl-C or SIGTERM stops every sweep and its trial processes and exits with 130; finished
ground-truth sweeps and strategy runs stay cached, so the same command resumes.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TypeVar

from scipy import stats

from benchmarks import archive
from lrsweep.api import (
    ADAPTIVE_CANDIDATES,
    Budget,
    Goal,
    LRSweep,
    Objective,
    Search,
    TrialPhase,
)
from lrsweep.engine import asha, space, strategies
from lrsweep.engine.sweep import Decision
from lrsweep.runtime.local import run_local
from lrsweep_trainer.numerics import PORTABLE_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUICK_OUT = ROOT / "out" / "search-efficiency-quick"
STEM = "search-efficiency"
IMAGE = "ghcr.io/lrsweep/lrsweep-trainer:0.1.0"
DEFAULT_STRATEGY = "adaptive"
STRATEGIES = (
    "adaptive",
    "random-2x",
    "grid",
    "asha",
    "rangeTest-valley",
    "rangeTest-steepest",
)
# Bump when the ground truth's meaning changes (not needed for task changes: those change
# the configuration hash).
GROUND_TRUTH_VERSION = 1
# Strategy sweeps run with the resource's default parallelism (see the module docstring).
STRATEGY_PARALLELISM: int = Search.model_fields["parallelism"].default
# Short-horizon check among contenders: dense rates within this many decades of the best.
CONTENDER_DECADES = 1.0
# Regret counts as a hit at or below max(TOLERANCE, seed spread).
TOLERANCE = 0.01
# The noise floor: full runs at each seed's dense-best rate times and divided by NUDGE.
NUDGE = 1.02
REDUCTION_FACTOR = 3


def within_target(regret: float | None, seed_sd: float) -> bool:
    """A hit: a regret (None: no winner, a miss) at or below max(TOLERANCE, seed_sd)."""
    return regret is not None and regret <= max(TOLERANCE, seed_sd)


EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C


# Set on Ctrl-C or SIGTERM, or when a strategy sweep failed: every sweep still running, in
# the main thread or a worker thread, stops its trials and raises SweepInterruptedError at
# its next decision. (No exception is raised asynchronously into whatever the main thread
# is doing, such as waiting on a future's lock.)
STOP = threading.Event()


# How long a trial paused at a rung waits for its sweep's decision before training on.
# `lrsweep run` waits 60 s. Here trials of two sweeps share the cores, and on a loaded
# machine a wait can pass 60 s: the trial then trains on and, if cut, has spent steps past
# the rung, so the compute column would depend on the load. A long wait keeps it a function
# of the curves alone (the engine never waits on itself: tests/unit/engine/test_sweep.py).
GATE_TIMEOUT = 600.0


# What every task is scored by unless it names another: the API's default objective,
# minimized (a task's may be maximized).
DEFAULT_METRIC = Objective().metric


def regret_of(score: float, best: float, goal: Goal = Goal.MINIMIZE) -> float:
    """How much worse `score` is than `best`, as a ratio (the benchmark's regret).

    score / best - 1 for a metric minimized; best / score - 1 for one maximized, so that an
    accuracy of 0.45 against 0.5 is +11% as a loss of 0.55 against 0.5 is +10%. Both need
    positive scores: `_train` refuses a task whose metric is not.
    """
    if score <= 0 or best <= 0:
        raise TaskError(f"regret is a ratio of positive scores, got {score:g} against {best:g}")
    return best / score - 1 if goal is Goal.MAXIMIZE else score / best - 1


def best_of(scores: Iterable[float], goal: Goal = Goal.MINIMIZE) -> float:
    """The best of `scores` for the goal: the lowest, or the highest when maximized."""
    return max(scores) if goal is Goal.MAXIMIZE else min(scores)


def sign(goal: Goal) -> float:
    """A factor that makes lower better: sort by sign(goal) * score."""
    return -1.0 if goal is Goal.MAXIMIZE else 1.0


# How often the main thread wakes while it waits on worker threads (`results_of`).
WAKE_EVERY = 0.2

T = TypeVar("T")


def results_of(futures: Sequence[Future[T]]) -> list[T]:
    """Each future's result, in order (the first failure raised), waited for in short steps.

    The kernel hands a Ctrl-C or SIGTERM to any thread of the process. Python runs its
    handler (`interrupt`) only in the main thread, when that thread next runs Python code: a
    wait without a timeout would hold the handler off until the future is done, and the
    benchmark would train on for minutes, deaf to the signal."""
    for future in futures:
        while not future.done():
            wait([future], timeout=WAKE_EVERY)
    return [future.result() for future in futures]


class SweepInterruptedError(Exception):
    """The benchmark was asked to stop before this sweep finished."""


class TaskError(Exception):
    """A task cannot be benchmarked as given (its trials fail, or report no objective)."""


EXIT_BAD_TASK = 2  # as `lrsweep run` exits on bad input


def run_sweep_doc(doc: LRSweep, workdir: Path) -> Decision:
    """`run_local`, abandoned at its next decision once STOP is set (its trials stopped)."""

    def check(decision: Decision) -> None:
        if STOP.is_set():
            raise SweepInterruptedError(doc.metadata.name)

    return run_local(doc, workdir, on_decision=check, gate_timeout=GATE_TIMEOUT)


@dataclass(frozen=True)
class BenchTask:
    """One task of the benchmark: a trial program, its rate range and its budget."""

    name: str
    what: str  # model, optimizer and schedule, in words
    low: float
    high: float
    steps: int
    eval_every: int
    min_steps: int
    trainer_args: tuple[str, ...] = ()  # flags of the built-in trainer (no --lr/--seed)
    script: str | None = None  # a script on the reporting API, relative to the repo
    why: str = ""
    # The objective: val_loss, or another metric the task reports, and which way is better
    # (one may be maximized, such as an accuracy).
    metric: str = DEFAULT_METRIC
    goal: Goal = Goal.MINIMIZE
    # Trials on portable numerics (lrsweep_trainer.numerics): the same scores on any x86 CPU,
    # so that a ground truth recorded on one machine holds on the next.
    portable: bool = False

    def config(self) -> dict[str, Any]:
        """What the ground truth depends on (hashed for the cache)."""
        return {
            "name": self.name,
            "low": self.low,
            "high": self.high,
            "steps": self.steps,
            "evalEvery": self.eval_every,
            "minSteps": self.min_steps,
            "reductionFactor": REDUCTION_FACTOR,
            "trainer_args": list(self.trainer_args),
            "script": self.script,
            # Only when not the default, so that the shipped tasks' cache keys stay as they are.
            **({"metric": self.metric} if self.metric != DEFAULT_METRIC else {}),
            **({"goal": self.goal.value} if self.goal is not Goal.MINIMIZE else {}),
            **({"numerics": "portable"} if self.portable else {}),
        }

    def container(self, seed: int) -> dict[str, Any]:
        if self.script is not None:
            # The script reads the seed from the environment (report.start()); the
            # container's env wins over the contract's LRSWEEP_SEED.
            # Portable numerics reach a script through the environment torch reads; a script
            # with convolutions also calls lrsweep_trainer.numerics.use_portable_numerics().
            portable = PORTABLE_ENVIRONMENT if self.portable else {}
            return {
                "name": "trainer",
                "image": IMAGE,
                "command": [sys.executable, str(ROOT / self.script)],
                "env": [
                    {"name": "LRSWEEP_SEED", "value": str(seed)},
                    *({"name": k, "value": v} for k, v in sorted(portable.items())),
                ],
            }
        flags = ["--portable-numerics"] if self.portable else []
        return {
            "name": "trainer",
            "image": IMAGE,
            "args": [
                *self.trainer_args,
                *flags,
                *("--lr", "$(LRSWEEP_LEARNING_RATE)", "--seed", str(seed)),
            ],
        }

    @property
    def first_rung(self) -> int:
        return self.rungs[0] if self.rungs else self.steps

    @property
    def rungs(self) -> list[int]:
        """Early-stopping rungs of this budget (below the full budget)."""
        budget = Budget(
            steps=self.steps,
            evalEvery=self.eval_every,
            minSteps=self.min_steps,
            reductionFactor=REDUCTION_FACTOR,
        )
        return asha.rung_steps(budget)


# Budgets: a full run is a few seconds of CPU (process start-up, ~1.5 s of importing torch,
# is most of a short trial's cost). minSteps is steps / 9, so with reductionFactor 3 the rungs
# are R/9 and R/3 below the full budget R: the three-level successive-halving ladder, where a
# trial stopped at the first rung costs 0.11 R. Every task trains long enough that the rate
# matters far beyond the first rung (too small rates are still far from converged, too large
# ones diverge or stall), and the ranges span 5 decades from "barely moves" to "diverges".
TASKS: tuple[BenchTask, ...] = (
    BenchTask(
        name="digits-mlp",
        what="MLP 64-64-64-10 on digits, SGD momentum 0.9, cosine decay",
        low=1e-4,
        high=10.0,
        steps=540,
        eval_every=20,
        min_steps=60,
        trainer_args=("--task", "digits-mlp", "--optimizer", "sgd", "--schedule", "cosine"),
        why="540 steps = 12 epochs: the best rates converge (val loss ~0.09), a cliff to "
        "divergence sits just above the optimum",
    ),
    BenchTask(
        name="digits-cnn",
        what="2-conv CNN on digits, Adam, constant rate",
        low=1e-5,
        high=1.0,
        steps=360,
        eval_every=20,
        min_steps=40,
        trainer_args=("--task", "digits-cnn", "--optimizer", "adam", "--schedule", "constant"),
        why="360 steps = 8 epochs; without decay, too-high Adam rates stay noisy instead of "
        "diverging, a different failure shape from SGD",
    ),
    BenchTask(
        name="regression",
        what="MLP 8-64-64-1 regression (MSE), SGD momentum 0.9, exponential decay",
        low=1e-4,
        high=10.0,
        steps=540,
        eval_every=20,
        min_steps=60,
        trainer_args=(
            "--task",
            "regression",
            "--optimizer",
            "sgd",
            "--schedule",
            "exponential",
        ),
        why="the loss keeps falling with the rate up to the edge of stability: the best rate "
        "is right below divergence (x8 decay over the run)",
    ),
    BenchTask(
        name="char-lm",
        what="1-block transformer char LM, AdamW, 10% warm-up + cosine",
        low=1e-5,
        high=1.0,
        steps=270,
        eval_every=15,
        min_steps=30,
        trainer_args=(
            "--task",
            "char-lm",
            "--optimizer",
            "adamw",
            "--schedule",
            "cosine",
            "--warmup-steps",
            "27",
        ),
        why="the slowest task (~3 s of training per full run); the first rung (30 steps) is "
        "right after warm-up, a hard short-horizon case",
    ),
    BenchTask(
        name="custom",
        what="user script (reporting API): 2-spiral MLP, SGD momentum 0.9, constant rate",
        low=1e-4,
        high=10.0,
        steps=270,
        eval_every=15,
        min_steps=30,
        script="trainer/examples/custom_train.py",
        why="trainer/examples/custom_train.py as written by a user, swept with `command:`; "
        "spirals need a high rate for long enough, so early rungs mislead",
    ),
)


@dataclass(frozen=True)
class Settings:
    tasks: tuple[BenchTask, ...]
    seeds: tuple[int, ...]
    dense_points: int
    grid_points: int
    asha_candidates: int
    quick: bool = False
    strategy_parallelism: int = STRATEGY_PARALLELISM


FULL = Settings(
    tasks=TASKS, seeds=(0, 1, 2, 3, 4), dense_points=35, grid_points=8, asha_candidates=16
)


def quick_settings() -> Settings:
    """A smoke test: the user's script (every strategy on it), short budgets, a coarse grid."""
    custom = next(t for t in TASKS if t.name == "custom")
    return Settings(
        tasks=(replace(custom, steps=108, eval_every=12, min_steps=12),),
        seeds=(0,),
        dense_points=9,
        grid_points=4,
        asha_candidates=6,
        quick=True,
    )


# --- sweeps ---------------------------------------------------------------------------------


def dense_rates(task: BenchTask, points: int) -> list[float]:
    return space.log_grid(task.low, task.high, points)


def sweep_doc(task: BenchTask, seed: int, label: str, search: Mapping[str, Any]) -> LRSweep:
    name = f"{task.name}-s{seed}-{label.lower()}"
    return LRSweep.model_validate(
        {
            "apiVersion": "lrsweep.dev/v1alpha1",
            "kind": "LRSweep",
            "metadata": {"name": name},
            "spec": {
                "search": {"min": task.low, "max": task.high, **search},
                "budget": {
                    "steps": task.steps,
                    "evalEvery": task.eval_every,
                    "minSteps": task.min_steps,
                    "reductionFactor": REDUCTION_FACTOR,
                },
                "objective": {"metric": task.metric, "goal": task.goal.value},
                "trial": {
                    "maxRetries": 1,
                    "template": {"spec": {"containers": [task.container(seed)]}},
                },
            },
        }
    )


def compute_r(decision: Decision, steps: int) -> float:
    return sum(r.steps_used for r in decision.records) / steps


def compute_breakdown(decision: Decision, steps: int) -> dict[str, float]:
    """Compute in R of the range test, the first round and later rounds ("refinement")."""
    parts = {"range_test": 0, "first_round": 0, "refinement": 0}
    for r in decision.records:
        if r.mode == "range-test":
            parts["range_test"] += r.steps_used
        elif r.round == 0:
            parts["first_round"] += r.steps_used
        else:
            parts["refinement"] += r.steps_used
    return {k: round(v / steps, 3) for k, v in parts.items()}


def trial_rows(decision: Decision, steps: int) -> list[dict[str, Any]]:
    """Every trial of a sweep, compactly: what happened at which rate."""
    rows = []
    for r in decision.records:
        final = _finite(r.rungs.get(steps)) if r.phase is TrialPhase.SUCCEEDED else None
        rows.append(
            {
                "id": r.id,
                "lr": r.learning_rate,
                "mode": r.mode,
                "round": r.round,
                "phase": r.phase.value,
                "steps": r.steps_used,
                "final": final,
                "verdict": r.verdict.value,
            }
        )
    return rows


# --- ground truth ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RatePoint:
    lr: float
    final: float | None  # val loss at the full budget; None: diverged or failed
    rungs: dict[int, float]
    phase: str
    steps_used: int


@dataclass(frozen=True)
class GroundTruth:
    task: str
    seed: int
    points: tuple[RatePoint, ...]
    cached: bool = False
    seconds: float = 0.0
    goal: Goal = Goal.MINIMIZE  # the task's: which final score is best

    @property
    def finals(self) -> dict[float, float]:
        return {p.lr: p.final for p in self.points if p.final is not None}

    @property
    def best(self) -> tuple[float, float]:
        finals = self.finals
        if not finals:
            raise RuntimeError(f"{self.task} seed {self.seed}: no dense-grid rate finished")
        lr = min(finals, key=lambda r: (sign(self.goal) * finals[r], r))
        return lr, finals[lr]

    def regret(self, score: float) -> float:
        """The regret of a final score at this seed against the best one here."""
        return regret_of(score, self.best[1], self.goal)


def config_hash(task: BenchTask, rates: Sequence[float]) -> str:
    blob = json.dumps(
        {"v": GROUND_TRUTH_VERSION, "task": task.config(), "rates": list(rates)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _load_cache(entry: archive.Entry, digest: str) -> GroundTruth | None:
    data = entry.load()
    if data is None or data.get("hash") != digest:
        return None
    points = tuple(
        RatePoint(
            lr=p["lr"],
            final=p["final"],
            rungs=dict(sorted((int(k), v) for k, v in p["rungs"].items())),
            phase=p["phase"],
            steps_used=p["steps_used"],
        )
        for p in data["rates"]
    )
    return GroundTruth(
        data["task"],
        data["seed"],
        points,
        cached=True,
        seconds=data["seconds"],
        goal=Goal(data.get("goal", Goal.MINIMIZE.value)),
    )


def _save_cache(entry: archive.Entry, digest: str, task: BenchTask, truth: GroundTruth) -> None:
    data = {
        "task": truth.task,
        "seed": truth.seed,
        "hash": digest,
        "config": task.config(),
        "seconds": round(truth.seconds, 1),
        # Only when maximized, as in the configuration: the shipped files stay as they are.
        **({"goal": truth.goal.value} if truth.goal is not Goal.MINIMIZE else {}),
        "rates": [
            {
                "lr": p.lr,
                "final": p.final,
                "rungs": {str(k): v for k, v in sorted(p.rungs.items())},
                "phase": p.phase,
                "steps_used": p.steps_used,
            }
            for p in truth.points
        ],
    }
    entry.store(data)


def _full_runs(
    task: BenchTask,
    seed: int,
    rates: Sequence[float],
    entry: archive.Entry,
    digest: str,
    *,
    jobs: int,
    workdir: Path,
    fresh: bool,
) -> GroundTruth:
    """Every rate trained for the full budget at this seed: one grid sweep, or its cache."""
    if not fresh and (cached := _load_cache(entry, digest)) is not None and cached.finals:
        return cached
    truth = _train(task, seed, rates, jobs=jobs, workdir=workdir)
    _save_cache(entry, digest, task, truth)
    return truth


def _train(
    task: BenchTask, seed: int, rates: Sequence[float], *, jobs: int, workdir: Path
) -> GroundTruth:
    """Every rate trained for the full budget at this seed, as one grid sweep."""
    search = {
        "strategy": "grid",
        "values": list(rates),
        "maxTrials": len(rates),
        "parallelism": jobs,
    }
    started = time.monotonic()
    decision = run_sweep_doc(sweep_doc(task, seed, "dense", search), workdir)
    if decision.broken:
        scored = (
            f" (the benchmark scores this task by its {task.metric}, "
            f"{'higher' if task.goal is Goal.MAXIMIZE else 'lower'} is better)"
        )
        raise TaskError(
            f"{task.name} seed {seed}: the ground-truth sweep gave up: {decision.message}"
            + (scored if "objective metric" in decision.message else "")
        )
    points = tuple(
        RatePoint(
            lr=r.learning_rate,
            final=_finite(r.rungs.get(task.steps)) if r.phase is TrialPhase.SUCCEEDED else None,
            rungs={k: v for k, v in r.rungs.items() if math.isfinite(v)},
            phase=r.phase.value,
            steps_used=r.steps_used,
        )
        for r in sorted(decision.records, key=lambda r: r.learning_rate)
    )
    if not any(p.final is not None for p in points):
        raise TaskError(
            f"{task.name} seed {seed}: no rate from {task.low:g} to {task.high:g} finished its "
            f"budget ({decision.message}); lower the range or check the script's logs "
            f"(--workdir keeps them)"
        )
    if bad := [p for p in points if p.final is not None and p.final <= 0]:
        raise TaskError(
            f"{task.name} seed {seed}: {task.metric} was {bad[0].final:g} at rate "
            f"{bad[0].lr:g}; the benchmark's regret is a ratio to the best score, so the "
            f"metric must stay above 0 at every rate (a loss, say, or an accuracy maximized)"
        )
    return GroundTruth(task.name, seed, points, seconds=time.monotonic() - started, goal=task.goal)


def ground_truth(
    task: BenchTask,
    seed: int,
    settings: Settings,
    *,
    jobs: int,
    cache_dir: Path,
    workdir: Path,
    fresh: bool,
) -> GroundTruth:
    """Full runs of every dense rate at this seed (cached per configuration and seed)."""
    rates = dense_rates(task, settings.dense_points)
    entry, digest = truth_path(cache_dir, task, seed, settings)
    return _full_runs(
        task, seed, rates, entry, digest, jobs=jobs, workdir=workdir / "dense", fresh=fresh
    )


def truth_path(
    cache_dir: Path, task: BenchTask, seed: int, settings: Settings
) -> tuple[archive.Entry, str]:
    """Where the dense ground truth of (task, seed) is cached, and its configuration hash."""
    digest = config_hash(task, dense_rates(task, settings.dense_points))
    return archive.Entry(cache_dir, f"{task.name}-s{seed}-{digest}"), digest


def load_truth(
    cache_dir: Path, task: BenchTask, seed: int, settings: Settings
) -> GroundTruth | None:
    """The cached dense ground truth, or None where it was never computed."""
    return _load_cache(*truth_path(cache_dir, task, seed, settings))


def nudged_rates(truth: GroundTruth) -> list[float]:
    best_lr, _ = truth.best
    return [space.tidy(best_lr / NUDGE), space.tidy(best_lr * NUDGE)]


def nudged_path(cache_dir: Path, task: BenchTask, truth: GroundTruth) -> tuple[archive.Entry, str]:
    digest = config_hash(task, nudged_rates(truth))
    return archive.Entry(cache_dir, f"{task.name}-s{truth.seed}-nudged-{digest}"), digest


def load_nudged(cache_dir: Path, task: BenchTask, truth: GroundTruth) -> GroundTruth | None:
    return _load_cache(*nudged_path(cache_dir, task, truth))


def noise_floor(
    task: BenchTask,
    truth: GroundTruth,
    *,
    jobs: int,
    cache_dir: Path,
    workdir: Path,
    fresh: bool,
) -> GroundTruth:
    """Full runs at the dense-best rate x NUDGE and / NUDGE, same seed (cached).

    Their regret is what a search would get that knew the best rate to within 2% but did
    not land on the dense-grid rate itself: how rough the score is around the optimum, and
    so how often any strategy can meet the target.
    """
    entry, digest = nudged_path(cache_dir, task, truth)
    rates = nudged_rates(truth)
    return _full_runs(
        task, truth.seed, rates, entry, digest, jobs=jobs, workdir=workdir / "nudged", fresh=fresh
    )


# The growing caches of full runs off the dense grid: at rates strategies chose at the task's
# other seeds, and at the rates benchmarks.ceiling trains around the optimum.
Extra = Literal["others", "ceiling"]


def other_seeds_path(
    cache_dir: Path, task: BenchTask, seed: int, kind: Extra = "others"
) -> tuple[archive.Entry, str]:
    """The growing cache of full runs of `kind` at this seed."""
    digest = config_hash(task, [])  # the task alone: rates accumulate in the entry
    return archive.Entry(cache_dir, f"{task.name}-s{seed}-{kind}-{digest}"), digest


def load_other_seeds(
    cache_dir: Path, task: BenchTask, seed: int, kind: Extra = "others"
) -> GroundTruth | None:
    return _load_cache(*other_seeds_path(cache_dir, task, seed, kind))


def other_seed_runs(
    task: BenchTask,
    truth: GroundTruth,
    rates: Sequence[float],
    *,
    jobs: int,
    cache_dir: Path,
    workdir: Path,
    fresh: bool,
    kind: Extra = "others",
) -> GroundTruth:
    """Full runs at `truth`'s seed of rates off the dense grid (cached by `kind`, the file
    grows): by default, rates chosen at other seeds.

    Rates of the dense grid are not trained again (the ground truth has them); the result
    holds every other rate asked for, now or by an earlier run of the benchmark.
    """
    entry, digest = other_seeds_path(cache_dir, task, truth.seed, kind)
    cached = None if fresh else _load_cache(entry, digest)
    known = {p.lr: p for p in cached.points} if cached else {}
    dense = {p.lr for p in truth.points}
    missing = sorted({lr for lr in rates if lr not in dense and lr not in known})
    if not missing:
        return cached or GroundTruth(task.name, truth.seed, (), goal=task.goal)
    ran = _train(task, truth.seed, missing, jobs=jobs, workdir=workdir)
    known.update({p.lr: p for p in ran.points})
    seconds = ran.seconds + (cached.seconds if cached else 0.0)
    points = tuple(known[lr] for lr in sorted(known))
    result = GroundTruth(task.name, truth.seed, points, seconds=seconds, goal=task.goal)
    _save_cache(entry, digest, task, result)
    return result


def seed_spread(truths: Sequence[GroundTruth]) -> tuple[float | None, float]:
    """The rate with the best mean final score over seeds, and the relative sd there.

    Relative: the sample standard deviation over seeds divided by the mean, comparable with
    regret. 0 with a single seed.
    """
    common: dict[float, list[float]] = {}
    for truth in truths:
        for lr, score in truth.finals.items():
            common.setdefault(lr, []).append(score)
    complete = {lr: v for lr, v in common.items() if len(v) == len(truths)}
    if not complete:
        return None, 0.0
    factor = sign(truths[0].goal)
    lr = min(complete, key=lambda r: (factor * statistics.fmean(complete[r]), r))
    return lr, relative_sd(complete[lr])


def relative_sd(values: Sequence[float]) -> float:
    """The sample standard deviation over the mean (comparable with regret); 0 for one value."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


# --- short horizon --------------------------------------------------------------------------


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties share their mean rank; inf ranks last), or None
    with fewer than 3 points or a constant side."""
    if len(xs) != len(ys) or len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(stats.spearmanr(xs, ys).statistic)


@dataclass(frozen=True)
class ShortHorizon:
    first_rung: int
    spearman: float | None  # first rung against final, every dense rate
    # The same among contenders only: dense rates within CONTENDER_DECADES of the best,
    # at the first and at the second rung. What early stopping must get right.
    contenders_first: float | None
    contenders_second: float | None
    first_rung_pick_regret: float | None  # final regret of the rate best at the first rung


def _rung_vs_final(
    points: Sequence[RatePoint], rung: int | None, goal: Goal = Goal.MINIMIZE
) -> float | None:
    """Spearman of the score at `rung` against the final score, over rates that reached it.

    A rate that reached the rung but not the end (diverged later) counts as the worst final
    score; rates that diverged before the rung are left out (every rule gets those right,
    and they would inflate the correlation).
    """
    if rung is None:
        return None
    worst = sign(goal) * math.inf
    pairs = [
        (p.rungs[rung], p.final if p.final is not None else worst)
        for p in points
        if rung in p.rungs
    ]
    return spearman([a for a, _ in pairs], [b for _, b in pairs])


def short_horizon(task: BenchTask, truth: GroundTruth) -> ShortHorizon:
    """How well early rungs rank rates by their final score, on the dense grid."""
    rungs = task.rungs
    first = rungs[0] if rungs else None
    second = rungs[1] if len(rungs) > 1 else None
    best_lr, _ = truth.best
    contenders = [
        p for p in truth.points if abs(math.log10(p.lr / best_lr)) <= CONTENDER_DECADES + 1e-9
    ]
    pick_regret = None
    reached = [p for p in truth.points if first is not None and first in p.rungs]
    if first is not None and reached:
        pick = min(reached, key=lambda p: sign(truth.goal) * p.rungs[first])
        pick_regret = truth.regret(pick.final) if pick.final is not None else None
    return ShortHorizon(
        first_rung=task.first_rung,
        spearman=_rung_vs_final(truth.points, first, truth.goal),
        contenders_first=_rung_vs_final(contenders, first, truth.goal),
        contenders_second=_rung_vs_final(contenders, second, truth.goal),
        first_rung_pick_regret=pick_regret,
    )


# --- strategies -----------------------------------------------------------------------------


@dataclass
class Run:
    task: str
    seed: int
    strategy: str
    chosen_lr: float | None
    score: float | None
    regret: float | None
    compute_r: float
    seed_sd: float = 0.0
    trials: int = 0
    breakdown: dict[str, float] = field(default_factory=dict)
    range_test: dict[str, float | None] | None = None
    trial_rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""

    def within(self) -> bool:
        return within_target(self.regret, self.seed_sd)


def _range_test_of(decision: Decision, task: BenchTask) -> dict[str, float | None] | None:
    """The range test's suggestions, and the range adaptive searches after it."""
    rt = decision.range_result
    if rt is None:
        return None
    low, high = strategies.adaptive_bounds(rt, task.low, task.high)
    return {
        "steepest": rt.steepest,
        "valley": rt.valley,
        "minimum": rt.minimum,
        "divergence": rt.divergence,
        "ceiling": rt.ceiling,
        "adaptive_low": low,
        "adaptive_high": high,
    }


def run_strategy(
    task: BenchTask,
    seed: int,
    label: str,
    search: Mapping[str, Any],
    truth: GroundTruth,
    workdir: Path,
    parallelism: int = STRATEGY_PARALLELISM,
) -> Run:
    started = time.monotonic()
    doc = sweep_doc(task, seed, label, {**search, "parallelism": parallelism})
    decision = run_sweep_doc(doc, workdir / label)
    chosen = decision.best
    regret = truth.regret(chosen.score) if chosen is not None else None
    return Run(
        task=task.name,
        seed=seed,
        strategy=label,
        chosen_lr=chosen.learning_rate if chosen else None,
        score=chosen.score if chosen else None,
        regret=regret,
        compute_r=compute_r(decision, task.steps),
        trials=len(decision.records),
        breakdown=compute_breakdown(decision, task.steps),
        range_test=_range_test_of(decision, task),
        trial_rows=trial_rows(decision, task.steps),
        seconds=time.monotonic() - started,
        message=decision.message,
    )


@dataclass(frozen=True)
class RunCache:
    """Finished strategy runs, so an interrupted benchmark resumes where it stopped.

    Keyed by everything a run depends on, the code included (`cache_code`); kept out of git
    (benchmarks/results/cache/ is ignored).
    """

    directory: Path
    code: str
    enabled: bool = True
    hits: list[str] = field(default_factory=list)  # runs taken from the cache

    def path(self, task: BenchTask, seed: int, label: str, search: Mapping[str, Any]) -> Path:
        blob = json.dumps(
            {
                "task": task.config(),
                "seed": seed,
                "search": dict(search),
                "engine": self.code,
                "gate_timeout": GATE_TIMEOUT,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        return self.directory / f"{task.name}-s{seed}-{label}-{digest}.json"

    def load(self, path: Path) -> Run | None:
        if not self.enabled:
            return None
        try:
            run = Run(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        self.hits.append(path.name)
        return run

    def save(self, path: Path, run: Run) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(run)))

    def run(
        self,
        task: BenchTask,
        seed: int,
        label: str,
        search: Mapping[str, Any],
        truth: GroundTruth,
        workdir: Path,
        parallelism: int,
    ) -> tuple[Run, bool]:
        """`run_strategy` at `parallelism`, or its cached result; True when cached."""
        path = self.path(task, seed, label, {**search, "parallelism": parallelism})
        cached = self.load(path)
        if cached is not None:
            return cached, True
        run = run_strategy(task, seed, label, search, truth, workdir, parallelism)
        self.save(path, run)
        return run, False


def case_units(
    task: BenchTask,
    seed: int,
    truth: GroundTruth,
    settings: Settings,
    workdir: Path,
    log: Callable[[str], None],
    cache: RunCache,
) -> list[Callable[[], list[Run]]]:
    """Every strategy on one (task, seed), as independent units of work.

    `random-2x` runs right after `adaptive` in the same unit: its budget is adaptive's compute.
    """

    def one(label: str, search: Mapping[str, Any]) -> Run:
        run, cached = cache.run(
            task, seed, label, search, truth, workdir, settings.strategy_parallelism
        )
        took = "cached" if cached else f"{run.seconds:.0f} s"
        regret = "-" if run.regret is None else f"{run.regret:+.2%}"
        chosen = "none" if run.chosen_lr is None else f"{run.chosen_lr:.4g}"
        log(
            f"{task.name} s{seed} {label:<18} lr {chosen:<9} regret {regret:>8} "
            f"compute {run.compute_r:5.2f} R  ({took})"
        )
        return run

    def adaptive_then_random() -> list[Run]:
        adaptive = one("adaptive", {"strategy": "adaptive"})
        draws = max(1, math.ceil(2 * adaptive.compute_r - 1e-9))
        search = {"strategy": "random", "candidates": draws, "maxTrials": draws}
        return [adaptive, one("random-2x", search)]

    def single(label: str, search: Mapping[str, Any]) -> Callable[[], list[Run]]:
        return lambda: [one(label, search)]

    return [
        adaptive_then_random,
        single("asha", {"strategy": "asha", "candidates": settings.asha_candidates}),
        single("grid", {"strategy": "grid", "candidates": settings.grid_points}),
        single("rangeTest-valley", {"strategy": "rangeTest", "suggestion": "valley"}),
        single("rangeTest-steepest", {"strategy": "rangeTest", "suggestion": "steepest"}),
    ]


# --- the whole benchmark ------------------------------------------------------------------


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def code_digest(paths: Sequence[Path]) -> str:
    """A hash of what the Python files `paths` run: their syntax trees without docstrings, so
    editing a comment, a docstring or the layout keeps the strategy cache."""
    digest = hashlib.sha256()
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, _DOCUMENTED) and node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:] or [ast.Pass()]
        digest.update(path.name.encode() + b"\0" + ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def cache_code(fingerprint: Mapping[str, Any]) -> str:
    """What the strategy cache keys a run's code by: the engine's, and the API's, whose
    defaults (adaptive's candidate count, refine rounds, parallelism) decide a run too."""
    return f"{fingerprint['engine_sha256']}+{fingerprint['api_sha256']}"


def engine_fingerprint() -> dict[str, Any]:
    """Which engine produced the numbers: the commit, a hash of the engine's code (and of the
    API, its defaults), and how long trials waited at a rung."""
    lrsweep = ROOT / "operator" / "lrsweep"
    engine_sha = code_digest(sorted((lrsweep / "engine").glob("*.py")))
    api_sha = code_digest([lrsweep / "api.py"])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "commit": commit,
        "engine_sha256": engine_sha,
        "api_sha256": api_sha,
        "gate_timeout_s": GATE_TIMEOUT,
        "adaptive": adaptive_defaults(),
        "machine": machine(),
    }


def machine() -> dict[str, str]:
    """Where the runs were made: full runs are not bitwise the same on every CPU and library
    build, and near the optimum that changes scores and choices (docs/benchmarks.md)."""
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    about = {"cpu": cpu, "python": platform.python_version()}
    for package in ("torch", "numpy", "scikit-learn"):
        try:
            about[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            about[package] = "not installed"
    return about


def machine_line(engine: Mapping[str, Any]) -> str:
    """A report's sentence on the machine the command ran on ("" for results from before it
    was recorded). Runs it took from a cache may come from another: the ground-truth check
    (`cached_truth_differs`) warns when cached runs do not hold here."""
    about = engine.get("machine")
    if not about:
        return ""
    libraries = ", ".join(f"{k} {v}" for k, v in about.items() if k != "cpu")
    return f" Run on {about['cpu']} ({libraries})."


def adaptive_defaults() -> dict[str, float]:
    """What the report says `adaptive` ran with (kept with the results, as the code changes)."""
    return {
        "candidates": ADAPTIVE_CANDIDATES,
        "finalists": strategies.FINALISTS,
        "top": strategies.ADAPTIVE_TOP,
        "decades": strategies.ADAPTIVE_DECADES,
    }


def ground_truths(
    settings: Settings,
    *,
    jobs: int,
    out: Path,
    workdir: Path,
    fresh: bool,
    log: Callable[[str], None],
) -> dict[tuple[str, int], GroundTruth]:
    """The ground truth of every (task, seed), from OUT/ground-truth or computed into it."""
    truths: dict[tuple[str, int], GroundTruth] = {}
    for task in settings.tasks:
        for seed in settings.seeds:
            truth = ground_truth(
                task,
                seed,
                settings,
                jobs=jobs,
                cache_dir=out / "ground-truth",
                workdir=workdir / task.name / f"s{seed}",
                fresh=fresh,
            )
            lr, score = truth.best
            source = "cached" if truth.cached else f"{truth.seconds:.0f} s"
            log(f"{task.name} s{seed} ground truth: best lr {lr:.4g} val {score:.4g} ({source})")
            truths[task.name, seed] = truth
        if (differs := cached_truth_differs(task, truths, workdir=workdir)) is not None:
            log(f"warning: {differs}")
    return truths


def cached_truth_differs(
    task: BenchTask, truths: Mapping[tuple[str, int], GroundTruth], *, workdir: Path
) -> str | None:
    """Why `task`'s cached ground truth does not hold on this machine, or None if it does.

    Full runs are not bitwise the same on every machine (other CPUs, other library builds
    round differently), and near the optimum a small difference changes the score a lot.
    So one recorded run, the best rate of the task's first cached seed, is repeated here:
    if it scores differently, this machine's strategy runs would be scored against another
    machine's ground truth.
    """
    cached = [t for (name, _), t in truths.items() if name == task.name and t.cached]
    if not cached:
        return None
    truth = cached[0]
    lr, recorded = truth.best
    try:
        here = _train(task, truth.seed, [lr], jobs=1, workdir=workdir / "check" / task.name)
        again = here.finals.get(lr)
    except TaskError:  # it diverged or failed here
        again = None
    if again == recorded:
        return None
    scored = "did not finish" if again is None else f"scored {again:.6g}"
    return (
        f"{task.name} seed {truth.seed} at rate {lr:.4g} {scored} here, {recorded:.6g} in "
        "the cached ground truth: it was recorded on a machine whose runs differ from this "
        "one's, so regrets would compare runs from two machines. To measure on this "
        "machine, recompute it here (`python -m benchmarks.search_efficiency --fresh`, or "
        f"delete OUT/ground-truth/{archive.NAME}), or measure on portable numerics "
        "(`--portable-numerics`), whose ground truth holds on any x86 CPU."
    )


def run_benchmark(
    settings: Settings, *, jobs: int, out: Path, workdir: Path, fresh: bool
) -> dict[str, Any]:
    lock = threading.Lock()
    started = time.monotonic()
    STOP.clear()
    fingerprint = engine_fingerprint()  # before anything runs: the engine that decided

    def log(line: str) -> None:
        with lock:
            print(f"[{time.monotonic() - started:6.0f}s] {line}", flush=True)

    truths = ground_truths(settings, jobs=jobs, out=out, workdir=workdir, fresh=fresh, log=log)
    floors: dict[tuple[str, int], GroundTruth] = {}
    for task in settings.tasks:
        for seed in settings.seeds:
            truth = truths[task.name, seed]
            floor = noise_floor(
                task,
                truth,
                jobs=jobs,
                cache_dir=out / "ground-truth",
                workdir=workdir / task.name / f"s{seed}",
                fresh=fresh,
            )
            regrets = ", ".join(
                "diverged" if p.final is None else f"{truth.regret(p.final):+.2%}"
                for p in floor.points
            )
            log(f"{task.name} s{seed} noise floor: best lr /{NUDGE:g}, x{NUDGE:g}: {regrets}")
            floors[task.name, seed] = floor
    truth_seconds = time.monotonic() - started

    cases = [(task, seed) for task in settings.tasks for seed in settings.seeds]
    cache = RunCache(out / "cache", cache_code(fingerprint), enabled=not fresh)
    units = [
        case_units(
            task,
            seed,
            truths[task.name, seed],
            settings,
            workdir / task.name / f"s{seed}",
            log,
            cache,
        )
        for task, seed in cases
    ]
    # The longest units (adaptive, then random) of every case first, the short ones last.
    order = [unit for position in range(len(units[0])) for unit in (u[position] for u in units)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            done = [run for runs in results_of([pool.submit(u) for u in order]) for run in runs]
        except BaseException:
            # Interrupted (or a unit failed): the sweeps still running in other threads stop
            # their trials at their next decision, queued ones never start.
            STOP.set()
            pool.shutdown(cancel_futures=True)
            raise
    others: dict[tuple[str, int], GroundTruth] = {}
    if len(settings.seeds) > 1:
        for task in settings.tasks:
            for seed in settings.seeds:
                picked = {
                    run.chosen_lr
                    for run in done
                    if run.task == task.name and run.seed != seed and run.chosen_lr is not None
                }
                other = other_seed_runs(
                    task,
                    truths[task.name, seed],
                    sorted(picked),
                    jobs=jobs,
                    cache_dir=out / "ground-truth",
                    workdir=workdir / task.name / f"s{seed}" / "others",
                    fresh=fresh,
                )
                log(
                    f"{task.name} s{seed}: {len(picked)} rates chosen at other seeds "
                    f"({len(other.points)} rates off the dense grid in its cache)"
                )
                others[task.name, seed] = other
    timing = {
        "total_s": round(time.monotonic() - started, 1),
        "ground_truth_s": round(truth_seconds, 1),
        "ground_truth_cached": sum(t.cached for t in truths.values()),
        "ground_truth_sweeps": len(truths),
        # Wall time the ground-truth sweeps took when they ran (cached ones included).
        "ground_truth_compute_s": round(sum(t.seconds for t in truths.values()), 1),
        "strategy_runs": len(done),
        "strategy_runs_cached": len(cache.hits),
    }
    return finish(
        settings,
        done,
        truths,
        floors,
        others,
        timing=timing,
        fingerprint=fingerprint,
        command=_command(),
        jobs=jobs,
    )


def finish(
    settings: Settings,
    runs: Sequence[Run],
    truths: Mapping[tuple[str, int], GroundTruth],
    floors: Mapping[tuple[str, int], GroundTruth],
    others: Mapping[tuple[str, int], GroundTruth],
    **about: Any,
) -> dict[str, Any]:
    """Seed spreads, short-horizon checks and the summary of finished runs."""
    from benchmarks.search_efficiency_report import summarize

    names = [task.name for task in settings.tasks]
    rank = {s: i for i, s in enumerate(STRATEGIES)}
    ordered = sorted(runs, key=lambda r: (names.index(r.task), r.seed, rank[r.strategy]))
    spreads = {
        task.name: seed_spread([truths[task.name, s] for s in settings.seeds])
        for task in settings.tasks
    }
    for run in ordered:
        run.seed_sd = spreads[run.task][1]
    horizons = {
        (task.name, seed): short_horizon(task, truths[task.name, seed])
        for task in settings.tasks
        for seed in settings.seeds
    }
    return summarize(settings, ordered, truths, floors, others, spreads, horizons, **about)


def rerender(out: Path) -> dict[str, Any]:
    """Rebuild the summary, report and plot of OUT/search-efficiency.json without running.

    Uses the runs and trial details stored there and the cached ground truth; for changes
    to the report itself (the numbers of every run stay as measured).
    """
    result = json.loads((out / f"{STEM}.json").read_text())
    base = quick_settings() if result["quick"] else FULL
    conf = result["settings"]
    shipped = {t.name: t for t in base.tasks}
    settings = replace(
        base,
        tasks=tuple(shipped[name] for name in result["tasks"]),
        seeds=tuple(conf["seeds"]),
        # Results from before the setting was recorded ran each strategy sweep alone.
        strategy_parallelism=conf.get("strategy_parallelism", 1),
    )
    if ran_portable(result):
        settings = portable(settings)
    truths: dict[tuple[str, int], GroundTruth] = {}
    for task in settings.tasks:
        for seed in settings.seeds:
            truth = load_truth(out / "ground-truth", task, seed, settings)
            if truth is None:
                raise SystemExit(f"no cached ground truth for {task.name} seed {seed} in {out}")
            truths[task.name, seed] = truth
    floors: dict[tuple[str, int], GroundTruth] = {}
    others: dict[tuple[str, int], GroundTruth] = {}
    for task in settings.tasks:
        for seed in settings.seeds:
            truth = truths[task.name, seed]
            if (floor := load_nudged(out / "ground-truth", task, truth)) is not None:
                floors[task.name, seed] = floor
            if (other := load_other_seeds(out / "ground-truth", task, seed)) is not None:
                others[task.name, seed] = other
    steps = {task.name: task.steps for task in settings.tasks}
    runs = []
    for stored in result["runs"]:
        detail = result["details"][f"{stored['task']}/s{stored['seed']}/{stored['strategy']}"]
        truth = truths[stored["task"], stored["seed"]]
        # From the trials' steps, as measured: the stored compute_r is rounded, and a median
        # of rounded values can round the other way.
        used = sum(row["steps"] for row in detail["trials"]) / steps[stored["task"]]
        score = stored["score"]
        runs.append(
            Run(
                task=stored["task"],
                seed=stored["seed"],
                strategy=stored["strategy"],
                chosen_lr=stored["chosen_lr"],
                score=score,
                regret=None if score is None else truth.regret(score),
                compute_r=used,
                trials=stored["trials"],
                breakdown=detail["compute_breakdown"],
                range_test=detail["range_test"],
                trial_rows=detail["trials"],
                seconds=detail["seconds"],
                message=detail["message"],
            )
        )
    # Results from before it was recorded lack the ground truth's compute time.
    timing = dict(result["timing"])
    timing.setdefault("ground_truth_compute_s", round(sum(t.seconds for t in truths.values()), 1))
    return finish(
        settings,
        runs,
        truths,
        floors,
        others,
        timing=timing,
        fingerprint=result["engine"],
        command=result["command"],
        jobs=result["jobs"],
    )


def portable(settings: Settings) -> Settings:
    """The same benchmark with every trial on portable numerics (`BenchTask.portable`)."""
    return replace(settings, tasks=tuple(replace(t, portable=True) for t in settings.tasks))


def ran_portable(result: Mapping[str, Any]) -> bool:
    """Whether a written result (its `settings`) ran on portable numerics."""
    return bool(result.get("settings", {}).get("numerics") == "portable")


def portable_option(parser: argparse.ArgumentParser) -> None:
    """--portable-numerics, as every benchmark takes it (read back with `numerics`)."""
    parser.add_argument(
        "--portable-numerics",
        action="store_true",
        help="every trial on kernels that give the same scores on any x86 CPU (slower; a "
        "ground truth of its own, recorded once for every machine; see docs/benchmarks.md)",
    )


def numerics(args: argparse.Namespace, settings: Settings) -> Settings:
    """`settings`, on portable numerics where --portable-numerics asks for them."""
    return portable(settings) if args.portable_numerics else settings


def _command() -> str:
    """This invocation, without --workdir (where trial logs went: no bearing on results)."""
    args = sys.argv[1:]
    if "--workdir" in args:
        at = args.index("--workdir")
        args = args[:at] + args[at + 2 :]
    args = [a for a in args if not a.startswith("--workdir=")]
    return shlex.join([".venv/bin/python", "-m", "benchmarks.search_efficiency", *args])


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: every sweep stops at its next decision; a second one stops at once."""
    if STOP.is_set():
        raise KeyboardInterrupt
    STOP.set()


def check_stopped() -> None:
    """Raise if a signal came: one after the last sweep's last decision (while its last trial
    process exits, or while cached runs load) is seen by no sweep, yet the run was stopped."""
    if STOP.is_set():
        raise SweepInterruptedError("stopped after every sweep's last decision")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~2 minutes)")
    parser.add_argument("--jobs", type=int, default=2, help="trial processes at once")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results directory (default {RESULTS.relative_to(ROOT)}; "
        f"--quick: {QUICK_OUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep trial logs here (default: a temp dir)"
    )
    parser.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="recompute the ground truth and every run (default: reuse OUT/ground-truth and "
        "the finished runs in OUT/cache, so an interrupted run resumes)",
    )
    portable_option(parser)
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="rebuild the report and plot from OUT's results and ground truth, running nothing",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    settings = quick_settings() if args.quick else FULL
    if args.task:
        known = [t.name for t in settings.tasks]
        unknown = sorted(set(args.task) - set(known))
        if unknown:
            parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(known)}")
        settings = replace(settings, tasks=tuple(t for t in settings.tasks if t.name in args.task))
    settings = numerics(args, settings)
    out: Path = args.out or (QUICK_OUT if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    from benchmarks.search_efficiency_report import write_outputs

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        if args.rerender:
            result = rerender(out)
        elif args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            result = run_benchmark(
                settings, jobs=args.jobs, out=out, workdir=args.workdir, fresh=args.fresh
            )
        else:
            with tempfile.TemporaryDirectory(prefix="lrsweep-se-") as tmp:
                result = run_benchmark(
                    settings, jobs=args.jobs, out=out, workdir=Path(tmp), fresh=args.fresh
                )
        check_stopped()
    except TaskError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_TASK) from None
    except (KeyboardInterrupt, SweepInterruptedError):
        print(
            f"interrupted: every trial process is stopped; finished sweeps stay cached in "
            f"{out / 'ground-truth'} and {out / 'cache'}, so the same command resumes",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    write_outputs(result, out, STEM)
    print(json.dumps({"summary": result["summary"], "target": result["target"]}, indent=2))


if __name__ == "__main__":
    main()
