"""Smoke test of the search-efficiency benchmark (`python -m benchmarks.search_efficiency`).

Covers: `--quick --out DIR` runs end to end through real trial processes (the user's own
script trainer/examples/custom_train.py, swept with `command:`, on a coarse dense grid) and
writes search-efficiency.json, .md and .png into DIR, with the ground truth cached under
DIR/ground-truth; the JSON has the default strategy, the reproduce command, one run per
strategy with a chosen rate, finite regret and compute above zero, the seed spread, a
summary per strategy, the target check, adaptive's defaults (also in the report's text),
a short-horizon correlation per task, and the determinism check (full runs of the same rate
and seed score the same in every sweep);
the noise floor has full runs 2% either side of the dense best, cached beside the ground
truth, and names the cases where the dense best is the only full run recorded at the seed
within target (a nudged rate or a rate chosen at another seed within target makes a case
reachable); the sparser grids (every k-th dense rate, from the ground truth) are reported; the
markdown carries the reproduce command; `--rerender` rebuilds the same JSON and markdown
from the stored runs and the cached ground truth without running anything, and rebuilds
the committed results exactly (native and portable numerics). Helpers
(Spearman with ties, the seed spread, the low-first-rung flag, the exact binomial interval
of a share, a sparser grid's pick from every offset) are checked on small hand-made inputs.
The engine's code digest (the strategy cache's key) ignores docstrings, comments and layout
and changes with any change to the code itself.
Other seeds: a pick is scored by its mean over every seed against the best mean dense rate
(a pick that diverges at another seed has no mean; one not trained at every seed is left
out; one seed gives no section), and the runs at other seeds train only rates neither the
dense grid nor their growing cache already has. A cached ground truth is checked once per
task by repeating its first cached seed's best run: a run that scores differently or fails
here is named with both scores and the way to recompute; a ground truth computed here is not
checked; the ground truths warn once per task whose cache does not hold. Portable numerics
(`--portable-numerics`) key a ground truth of their own and reach every trial: the built-in
trainer's flag, a script's environment. SIGTERM or Ctrl-C
stops the benchmark with exit code 130 and no trial process left running, both while the
ground truth runs (main thread) and while strategy sweeps run in worker threads; a signal no
sweep sees (after the last decision) still ends this benchmark, `parallelism`, `holdout`,
`ladder` and `ceiling` with 130 and no report; a signal the kernel hands to a worker thread
is handled while the main thread waits on it.

The full benchmark is not part of the test suite; it runs with
`python -m benchmarks.search_efficiency --jobs 2` (see benchmarks/results/search-efficiency.md).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

import benchmarks.ceiling as ceiling
import benchmarks.holdout as holdout
import benchmarks.ladder as ladder
import benchmarks.parallelism as parallelism
import benchmarks.search_efficiency as se
from benchmarks import archive
from benchmarks.search_efficiency import (
    STRATEGIES,
    GroundTruth,
    RatePoint,
    Run,
    quick_settings,
    seed_spread,
    spearman,
)
from benchmarks.search_efficiency_report import (
    best_score_spread,
    low_first_rung,
    noise_floor_summary,
    share_interval,
    sparser_grids,
    summarize_other_seeds,
)
from lrsweep.api import ADAPTIVE_CANDIDATES, Goal
from lrsweep.engine import strategies
from tests.benchmarks.conftest import copy_caches
from tests.benchmarks.running import run_module

ROOT = Path(__file__).resolve().parents[2]


def _truth(seed: int, finals: dict[float, float | None], goal: Goal = Goal.MINIMIZE) -> GroundTruth:
    points = tuple(
        RatePoint(lr, final, {}, "Succeeded" if final else "Diverged", 10)
        for lr, final in finals.items()
    )
    return GroundTruth("t", seed, points, goal=goal)


ENGINE_MODULE = '''"""A module."""

class Rule:
    """A class."""

    def keep(self, x: int) -> bool:
        """A method."""
        return x > 2  # the threshold


def only_a_docstring() -> None:
    """Nothing else."""
'''


def _digest_of(tmp_path: Path, source: str) -> str:
    (tmp_path / "rule.py").write_text(source)
    return se.code_digest(sorted(tmp_path.glob("*.py")))


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("A method.", "Keeps x when it is large."),
        lambda s: s.replace("  # the threshold", "  # a different comment"),
        lambda s: s.replace('"""A module."""\n', ""),
        lambda s: s.replace('    """Nothing else."""', "    pass"),
        lambda s: s.replace("return x > 2", "return (\n            x > 2\n        )"),
    ],
    ids=["docstring", "comment", "module docstring", "docstring-only body", "layout"],
)
def test_the_engine_digest_ignores_what_does_not_run(
    tmp_path: Path, edit: Callable[[str], str]
) -> None:
    assert _digest_of(tmp_path, edit(ENGINE_MODULE)) == _digest_of(tmp_path, ENGINE_MODULE)


def test_the_engine_digest_changes_with_the_code(tmp_path: Path) -> None:
    changed = ENGINE_MODULE.replace("return x > 2", "return x >= 2")
    assert _digest_of(tmp_path, changed) != _digest_of(tmp_path, ENGINE_MODULE)


def test_the_engine_fingerprint_records_the_machine_and_its_libraries() -> None:
    machine = se.engine_fingerprint()["machine"]
    assert machine["cpu"]
    assert machine["torch"].startswith("2.")  # torch 2.13.0 (+cpu here)
    assert {"python", "numpy", "scikit-learn"} <= set(machine)


def test_the_strategy_cache_keys_runs_by_the_api_too(tmp_path: Path) -> None:
    # adaptive's default candidate count lives in the API, not the engine.
    fingerprint = se.engine_fingerprint()
    assert fingerprint["api_sha256"] != fingerprint["engine_sha256"]
    edited = {**fingerprint, "api_sha256": "0" * 12}
    task = quick_settings().tasks[0]

    def path(fp: dict[str, object]) -> Path:
        return se.RunCache(tmp_path, se.cache_code(fp)).path(task, 0, "adaptive", {})

    assert path(edited) != path(fingerprint)


def test_spearman_handles_ties_and_reversed_orders() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Diverged rates rank last together (ties share their mean rank).
    assert spearman([1, 2, 3, 4], [1, 2, math.inf, math.inf]) == pytest.approx(
        4.5 / math.sqrt(5 * 4.5)
    )
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_a_low_first_rung_is_flagged_from_the_contenders_mean_correlation() -> None:
    detail: dict[str, dict[str, list[float | None]]] = {
        "poor": {"contenders_first_rung_by_seed": [0.1, -0.2, None]},
        "good": {"contenders_first_rung_by_seed": [0.9, 0.8, 0.7]},
        "unknown": {"contenders_first_rung_by_seed": [None]},
    }
    assert low_first_rung(detail) == ["poor"]


def test_seed_spread_is_relative_at_the_best_mean_rate() -> None:
    truths = [
        _truth(0, {0.1: 1.0, 0.2: 0.9, 0.4: None}),
        _truth(1, {0.1: 1.0, 0.2: 1.0, 0.4: 0.5}),
    ]
    lr, sd = seed_spread(truths)
    # 0.4 diverged at one seed, so it has no mean over every seed; 0.2 has the best mean.
    assert lr == 0.2
    assert sd == pytest.approx(math.sqrt(0.005) / 0.95)
    assert seed_spread(truths[:1]) == (0.2, 0.0)


def test_a_maximized_metric_is_best_at_its_highest_score() -> None:
    truth = _truth(0, {0.1: 0.8, 0.2: 0.9, 0.4: 0.5, 0.8: None}, Goal.MAXIMIZE)
    assert truth.best == (0.2, 0.9)


def test_a_maximized_metric_regrets_the_best_over_the_score() -> None:
    truth = _truth(0, {0.1: 0.8, 0.2: 0.9}, Goal.MAXIMIZE)
    assert truth.regret(0.8) == pytest.approx(0.9 / 0.8 - 1)
    assert truth.regret(0.9) == 0.0


def test_regret_refuses_a_score_that_is_not_positive() -> None:
    with pytest.raises(se.TaskError, match="regret is a ratio of positive scores"):
        se.regret_of(0.0, 0.5, Goal.MAXIMIZE)


def test_seed_spread_of_a_maximized_metric_is_at_the_highest_mean_rate() -> None:
    truths = [
        _truth(0, {0.1: 0.6, 0.2: 0.9}, Goal.MAXIMIZE),
        _truth(1, {0.1: 0.7, 0.2: 0.8}, Goal.MAXIMIZE),
    ]
    lr, sd = seed_spread(truths)
    assert lr == 0.2
    assert sd == pytest.approx(math.sqrt(0.005) / 0.85)


def test_sparser_grids_of_a_maximized_metric_pick_the_highest_score() -> None:
    settings = replace(quick_settings(), tasks=(replace(quick_settings().tasks[0], name="t"),))
    settings = replace(settings, seeds=(0,))
    truths = {("t", 0): _truth(0, {0.1: 0.5, 0.2: 0.9, 0.4: 0.6, 0.8: 0.8}, Goal.MAXIMIZE)}
    spreads = {"t": (0.2, 0.0)}
    (row,) = sparser_grids(settings, truths, spreads, (2,))
    # {0.1, 0.4} picks 0.4 (0.9 / 0.6 - 1), {0.2, 0.8} picks 0.2 (the best, no regret).
    assert row["mean_regret"] == pytest.approx((0.9 / 0.6 - 1) / 2)
    assert row["within_target_share"] == 0.5


def _accuracy_truth() -> GroundTruth:
    """Accuracies (maximized) at the custom quick task's first rung (12) and at the end;
    0.4 leads at the rung, then diverges."""
    rows = {0.05: (0.3, 0.4), 0.1: (0.5, 0.6), 0.2: (0.7, 0.8), 0.4: (0.9, None)}
    points = tuple(
        RatePoint(lr, final, {12: rung}, "Succeeded" if final else "Diverged", 108)
        for lr, (rung, final) in rows.items()
    )
    return GroundTruth("custom", 0, points, goal=Goal.MAXIMIZE)


def test_short_horizon_of_a_maximized_metric_ranks_a_later_divergence_last() -> None:
    (task,) = quick_settings().tasks
    assert task.rungs[0] == 12
    check = se.short_horizon(task, _accuracy_truth())
    # Rung ranks 1-4 against final ranks 2, 3, 4 and 1 (diverged: the worst accuracy).
    assert check.spearman == pytest.approx(-0.2)


def test_short_horizon_of_a_maximized_metric_picks_the_highest_at_the_first_rung() -> None:
    (task,) = quick_settings().tasks
    check = se.short_horizon(task, _accuracy_truth())
    assert check.first_rung_pick_regret is None  # it picked 0.4, which diverged later


def test_best_score_spread_is_relative_over_each_seeds_best_score() -> None:
    settings = replace(quick_settings(), tasks=(replace(quick_settings().tasks[0], name="t"),))
    truths = {
        ("t", 0): _truth(0, {0.1: 1.0, 0.2: 0.9, 0.4: None}),
        ("t", 1): _truth(1, {0.1: 1.0, 0.2: 1.0, 0.4: 0.5}),
    }
    # Bests 0.9 (at 0.2) and 0.5 (at 0.4): not one rate's scores, as in seed_spread.
    spread = best_score_spread(replace(settings, seeds=(0, 1)), truths)
    assert spread["t"] == pytest.approx(math.sqrt(0.08) / 0.7)
    assert best_score_spread(replace(settings, seeds=(0,)), truths) == {"t": 0.0}


def _run(seed: int, strategy: str, lr: float | None, score: float | None) -> Run:
    return Run("t", seed, strategy, lr, score, None, 1.0)


def test_other_seeds_score_the_chosen_rate_by_its_mean_over_every_seed() -> None:
    settings = replace(quick_settings(), tasks=(replace(quick_settings().tasks[0], name="t"),))
    settings = replace(settings, seeds=(0, 1))
    truths = {
        ("t", 0): _truth(0, {0.1: 1.0, 0.2: 0.8, 0.4: 0.5}),
        ("t", 1): _truth(1, {0.1: 1.0, 0.2: 0.8, 0.4: None}),
    }
    # 0.3 is off the dense grid: seed 1 has it from the other-seeds runs, seed 0 does not.
    others = {("t", 1): _truth(1, {0.3: 1.2})}
    runs = [
        _run(0, "grid", 0.1, 1.0),  # dense at both seeds
        _run(0, "asha", 0.4, 0.5),  # diverges at seed 1
        _run(0, "adaptive", 0.3, 0.6),  # its own score at seed 0, the extra run at seed 1
        _run(1, "adaptive", 0.3, 1.2),  # seed 0 never trained 0.3: not measured
        _run(0, "random-2x", None, None),  # no winner
    ]
    spreads = {"t": seed_spread([truths["t", 0], truths["t", 1]])}
    result = summarize_other_seeds(settings, runs, truths, others, spreads)

    assert result is not None
    # The reference: 0.2, the best mean over seeds (0.4 diverged at seed 1).
    assert result["reference"]["t"]["lr"] == 0.2
    assert result["reference"]["t"]["mean"] == pytest.approx(0.8)
    by = {(c["seed"], c["strategy"]): c for c in result["runs"]}
    assert set(by) == {(0, "grid"), (0, "asha"), (0, "adaptive")}
    assert by[0, "grid"]["regret"] == pytest.approx(1.0 / 0.8 - 1)
    assert by[0, "grid"]["scores_by_seed"] == {"0": 1.0, "1": 1.0}
    assert by[0, "asha"]["regret"] is None
    assert by[0, "asha"]["within_target"] is False
    assert by[0, "adaptive"]["regret"] == pytest.approx(0.9 / 0.8 - 1)
    assert result["summary"]["asha"]["diverged_at_another_seed"] == 1
    assert result["summary"]["random-2x"]["cases"] == 0


def test_other_seeds_need_two_seeds() -> None:
    settings = replace(quick_settings(), seeds=(0,))
    truths = {("custom", 0): _truth(0, {0.1: 1.0})}
    spreads = {"custom": seed_spread([truths["custom", 0]])}
    assert summarize_other_seeds(settings, [], truths, {}, spreads) is None


def test_share_interval_is_the_exact_binomial_one() -> None:
    # Closed forms at the extremes: 0 of n has upper bound 1 - 0.025^(1/n), n of n has
    # lower bound 0.025^(1/n).
    assert share_interval(0, 10) == [0.0, pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-4)]
    assert share_interval(10, 10) == [pytest.approx(0.025 ** (1 / 10), abs=1e-4), 1.0]
    low, high = share_interval(11, 15)
    assert low < 11 / 15 < high
    assert share_interval(22, 30)[1] - share_interval(22, 30)[0] < high - low


def _only_best(nudged: dict[float, float | None], other: dict[float, float | None]) -> list[object]:
    """The noise floor's only-best cases of one seed whose dense best (0.2) scores 0.5,
    with a tolerance of 10%."""
    settings = replace(quick_settings(), tasks=(replace(quick_settings().tasks[0], name="t"),))
    settings = replace(settings, seeds=(0,))
    truths = {("t", 0): _truth(0, {0.1: 0.6, 0.2: 0.5, 0.4: None})}
    floor = noise_floor_summary(
        settings,
        truths,
        {("t", 0): _truth(0, nudged)},
        {("t", 0): _truth(0, other)} if other else {},
        {"t": (0.2, 0.1)},
    )
    assert floor is not None
    return list(floor["only_best"])


def test_a_case_whose_dense_best_alone_is_within_target_is_named() -> None:
    assert _only_best({0.196: 0.6, 0.204: None}, {0.3: 0.56}) == [{"task": "t", "seed": 0}]


def test_a_nudged_rate_within_target_makes_a_case_reachable() -> None:
    assert _only_best({0.196: 0.6, 0.204: 0.54}, {}) == []


def test_a_rate_chosen_at_another_seed_within_target_makes_a_case_reachable() -> None:
    assert _only_best({0.196: 0.6, 0.204: 0.6}, {0.3: 0.54}) == []


def test_sparser_grids_pick_their_best_rate_from_every_offset() -> None:
    settings = replace(quick_settings(), tasks=(replace(quick_settings().tasks[0], name="t"),))
    settings = replace(settings, seeds=(0,))
    truths = {("t", 0): _truth(0, {0.8: 0.6, 0.1: 1.0, 0.4: None, 0.2: 0.5})}
    spreads = {"t": (0.2, 0.1)}  # tolerance: regret <= 10%

    rows = {row["every"]: row for row in sparser_grids(settings, truths, spreads, (2, 3, 4))}

    # 1 in 2, in rate order: {0.1, 0.4} picks 0.1 (0.4 diverged), {0.2, 0.8} picks 0.2.
    assert rows[2]["grids"] == 2
    assert rows[2]["mean_compute_r"] == 2
    assert rows[2]["within_target_share"] == 0.5
    assert rows[2]["mean_regret"] == pytest.approx(0.5)  # (1.0 / 0.5 - 1 + 0) / 2
    # 1 in 3: {0.1, 0.8} picks 0.8 (+20%), {0.2} hits, {0.4} diverged: no pick, a miss.
    assert rows[3]["grids"] == 3
    assert rows[3]["within_target_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows[3]["mean_regret"] == pytest.approx(0.1)
    assert rows[3]["within_target_by_task"] == {"t": pytest.approx(1 / 3, abs=1e-4)}
    # One rate per grid is no grid at all.
    assert 4 not in rows


@pytest.mark.e2e
def test_other_seed_runs_train_each_missing_rate_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = quick_settings().tasks[0]
    truth = _truth(1, {0.1: 0.5})
    first = se.other_seed_runs(
        task, truth, [0.1, 0.25], jobs=1, cache_dir=tmp_path, workdir=tmp_path / "w", fresh=False
    )
    # 0.1 is on the dense grid: only 0.25 trained, for the full budget, at the truth's seed.
    assert [p.lr for p in first.points] == [0.25]
    assert first.points[0].steps_used == task.steps
    assert first.seed == 1

    def no_training(*args: object, **kwargs: object) -> GroundTruth:
        raise AssertionError("trained a rate the cache already holds")

    monkeypatch.setattr(se, "_train", no_training)
    again = se.other_seed_runs(
        task, truth, [0.25], jobs=1, cache_dir=tmp_path, workdir=tmp_path / "w", fresh=False
    )
    assert again.points == first.points
    assert se.load_other_seeds(tmp_path, task, 1) is not None
    assert se.load_other_seeds(tmp_path, task, 0) is None


def _cached(seed: int, finals: dict[float, float | None]) -> GroundTruth:
    return replace(_truth(seed, finals), cached=True)


def _repeating(monkeypatch: pytest.MonkeyPatch, final: float | None) -> list[tuple[int, float]]:
    """Make `_train` score every rate `final` (or fail as a diverged run does); returns the
    (seed, rate) pairs it was asked to run."""
    asked: list[tuple[int, float]] = []

    def train(task: se.BenchTask, seed: int, rates: list[float], **kwargs: object) -> GroundTruth:
        asked.extend((seed, lr) for lr in rates)
        if final is None:
            raise se.TaskError("no rate finished")
        return _truth(seed, dict.fromkeys(rates, final))

    monkeypatch.setattr(se, "_train", train)
    return asked


def test_a_cached_ground_truth_that_reproduces_here_passes_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = quick_settings().tasks[0]
    asked = _repeating(monkeypatch, 0.5)
    truths = {(task.name, 2): _cached(2, {0.1: 0.5, 0.2: 0.7}), (task.name, 3): _cached(3, {})}
    assert se.cached_truth_differs(task, truths, workdir=tmp_path) is None
    assert asked == [(2, 0.1)]  # one run: the first cached seed's best rate


def test_a_cached_ground_truth_from_another_machine_is_named_with_both_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = quick_settings().tasks[0]
    _repeating(monkeypatch, 0.75)
    why = se.cached_truth_differs(task, {(task.name, 0): _cached(0, {0.1: 0.5})}, workdir=tmp_path)
    assert why is not None
    assert "seed 0 at rate 0.1 scored 0.75 here, 0.5 in the cached ground truth" in why
    assert "--fresh" in why
    assert "--portable-numerics" in why


def test_a_cached_run_that_diverges_here_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = quick_settings().tasks[0]
    _repeating(monkeypatch, None)
    why = se.cached_truth_differs(task, {(task.name, 0): _cached(0, {0.1: 0.5})}, workdir=tmp_path)
    assert why is not None
    assert "did not finish here" in why


def test_a_ground_truth_computed_here_is_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = quick_settings().tasks[0]
    asked = _repeating(monkeypatch, 0.75)
    truths = {(task.name, 0): _truth(0, {0.1: 0.5})}  # not from the cache
    assert se.cached_truth_differs(task, truths, workdir=tmp_path) is None
    assert asked == []


def test_the_ground_truths_warn_once_per_task_whose_cache_does_not_hold_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(quick_settings(), seeds=(0, 1))
    monkeypatch.setattr(se, "ground_truth", lambda task, seed, *a, **k: _cached(seed, {0.1: 0.5}))
    _repeating(monkeypatch, 0.75)
    lines: list[str] = []
    se.ground_truths(
        settings, jobs=1, out=tmp_path, workdir=tmp_path, fresh=False, log=lines.append
    )
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "custom seed 0 at rate 0.1 scored 0.75 here" in warnings[0]


def test_portable_numerics_key_a_ground_truth_of_their_own() -> None:
    task = se.FULL.tasks[0]
    rates = se.dense_rates(task, se.FULL.dense_points)
    assert se.config_hash(se.portable(se.FULL).tasks[0], rates) != se.config_hash(task, rates)


def test_portable_builtin_tasks_run_the_trainer_with_portable_numerics() -> None:
    for task in se.portable(se.FULL).tasks:
        if task.script is None:
            assert "--portable-numerics" in task.container(0)["args"]


def test_portable_script_tasks_get_the_environment_torch_reads() -> None:
    task = se.portable(quick_settings()).tasks[0]
    env = {e["name"]: e["value"] for e in task.container(3)["env"]}
    assert env == {"LRSWEEP_SEED": "3", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


@pytest.mark.e2e
def test_quick_benchmark_writes_sane_results(quick_benchmark: Path, tmp_path: Path) -> None:
    # A copy of what the quick run wrote: --rerender below rewrites its files.
    out = copy_caches(quick_benchmark, tmp_path / "out")
    result = json.loads((out / "search-efficiency.json").read_text())

    assert result["default_strategy"] == "adaptive"
    assert "benchmarks.search_efficiency" in result["command"]
    assert "--quick" in result["command"]
    assert result["quick"] is True
    runs = result["runs"]
    assert {r["strategy"] for r in runs} == set(STRATEGIES)
    tasks = {r["task"] for r in runs}
    assert tasks == {"custom"}
    assert len(runs) == len(STRATEGIES) * len(tasks) * len(result["settings"]["seeds"])
    for run in runs:
        assert {"task", "seed", "strategy", "chosen_lr", "regret", "compute_r", "seed_sd"} <= set(
            run
        )
        assert run["compute_r"] > 0, run
        assert run["chosen_lr"] is not None, run
        assert run["chosen_lr"] > 0, run
        assert math.isfinite(run["regret"]), run
        # Nothing beats the dense grid by more than the grid's coarseness can explain.
        assert run["regret"] > -0.9, run
        assert run["seed_sd"] >= 0
    by = {r["strategy"]: r for r in runs}
    # A range test alone costs less than adaptive; random gets twice adaptive's compute.
    assert by["rangeTest-valley"]["compute_r"] < by["adaptive"]["compute_r"]
    # (compute_r is rounded to 3 decimals in the JSON)
    twice = 2 * by["adaptive"]["compute_r"]
    assert by["random-2x"]["trials"] in {math.ceil(twice - 0.002), math.ceil(twice + 0.002)}
    assert by["grid"]["trials"] == result["settings"]["grid_points"]

    summary = result["summary"]
    assert set(summary) == set(STRATEGIES)
    for stats in summary.values():
        assert 0 <= stats["within_target_share"] <= 1
        assert stats["median_compute_r"] > 0
        assert math.isfinite(stats["mean_regret"])
    assert isinstance(result["target"]["met"], bool)
    rho = result["short_horizon"]["custom"]
    assert rho is None or -1 <= rho <= 1
    checks = result["checks"]["deterministic_scores"]
    assert checks["mismatches"] == []

    entries = archive.read(out / "ground-truth")
    cache = [key for key in fnmatch.filter(entries, "custom-s0-*") if "nudged" not in key]
    assert len(cache) == 1
    truth = entries[cache[0]]
    assert len(truth["rates"]) == result["settings"]["dense_points"]
    assert any(p["final"] is not None for p in truth["rates"])

    # The noise floor: full runs 2% either side of the dense best, at the same seed.
    floor = result["noise_floor"]
    best_lr = result["tasks"]["custom"]["dense_best"]["0"]["lr"]
    nudged = sorted(r["lr"] for r in floor["runs"])
    assert nudged[0] == pytest.approx(best_lr / floor["nudge"], rel=1e-3)
    assert nudged[1] == pytest.approx(best_lr * floor["nudge"], rel=1e-3)
    assert floor["within_target"] == sum(r["within_target"] for r in floor["runs"])
    assert len(fnmatch.filter(entries, "custom-s0-nudged-*")) == 1

    # For scale, exhaustive grids of every k-th dense rate, from the ground truth alone.
    sparser = result["sparser_grids"]
    assert [row["every"] for row in sparser] == [2, 3, 4, 5]
    for row in sparser:
        assert row["grids"] == row["every"]  # one task, one seed: one grid per offset
        assert 0 <= row["within_target_share"] <= 1

    report = (out / "search-efficiency.md").read_text()
    assert result["command"] in report
    # adaptive's defaults are kept with the results and described from them.
    defaults = result["engine"]["adaptive"]
    assert defaults["finalists"] == strategies.FINALISTS
    assert defaults["candidates"] == ADAPTIVE_CANDIDATES
    assert f"({ADAPTIVE_CANDIDATES} candidates in the" in report
    assert f"at least {strategies.FINALISTS} finalists" in report
    assert "Target met" in report
    assert (out / "search-efficiency.png").read_bytes().startswith(b"\x89PNG")

    # --rerender rebuilds the report from the stored runs and cached ground truth alone.
    (out / "search-efficiency.md").unlink()
    run_module(
        "benchmarks.search_efficiency", "--quick", "--rerender", "--out", str(out), timeout=120
    )
    rerendered = json.loads((out / "search-efficiency.json").read_text())
    assert rerendered["runs"] == result["runs"]
    assert rerendered["summary"] == result["summary"]
    assert (out / "search-efficiency.md").read_text() == report


def _processes_under(workdir: Path) -> list[int]:
    """Live processes whose environment names `workdir` (Linux /proc; a trial's environment
    holds its summary path, which is under the sweep's workdir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(workdir).encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def _signal_stops_the_benchmark(tmp_path: Path, sweep: str, signum: signal.Signals) -> None:
    """Start `--quick` in tmp_path, signal it once a `sweep` trial runs: it ends as stopped
    (130, "interrupted") and leaves no trial process behind."""
    workdir = tmp_path / "work"
    bench = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmarks.search_efficiency", "--quick", "--jobs", "2"),
            *("--out", str(tmp_path / "out"), "--workdir", str(workdir)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (
            list(workdir.glob(f"custom/s0/{sweep}/trials/*.log")) and _processes_under(workdir)
        ):
            assert bench.poll() is None, bench.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"no {sweep} trial started in 300 s"
            time.sleep(0.2)
        os.kill(bench.pid, signum)
        # Generous: on a loaded machine a sweep's next decision and the trials' grace
        # period take far longer than the few seconds they take alone.
        _, stderr = bench.communicate(timeout=180)
    finally:
        if bench.poll() is None:  # failed: leave no benchmark or trial running behind
            bench.kill()
            for pid in _processes_under(workdir):  # each trial leads its process group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        bench.communicate()
    assert _processes_under(workdir) == []
    assert bench.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr


@pytest.mark.e2e
def test_a_signal_stops_the_ground_truth_and_every_trial_process(tmp_path: Path) -> None:
    _signal_stops_the_benchmark(tmp_path, "dense", signal.SIGTERM)  # in the main thread


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])  # SIGINT: Ctrl-C
def test_a_signal_stops_a_strategy_sweep_and_every_trial_process(
    tmp_path: Path, quick_benchmark: Path, signum: signal.Signals
) -> None:
    # The ground truth from the shared quick run: strategy sweeps (in worker threads) start
    # at once.
    copy_caches(quick_benchmark, tmp_path / "out", "ground-truth")
    _signal_stops_the_benchmark(tmp_path, "adaptive", signum)


def test_a_signal_a_worker_thread_receives_is_handled_while_the_main_thread_waits() -> None:
    handled = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.set())
    try:

        def unit() -> bool:
            time.sleep(1)  # the main thread is waiting by now
            # The kernel may deliver a process's signal to any thread: here, to this one.
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            # The handler runs in the main thread, which is waiting on this very unit.
            return handled.wait(timeout=10)

        with ThreadPoolExecutor(max_workers=1) as pool:
            assert se.results_of([pool.submit(unit)]) == [True]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_results_of_raises_the_first_failure_in_order() -> None:
    def fail() -> int:
        raise TimeoutError("a unit's own timeout")

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(lambda: 1), pool.submit(fail)]
        with pytest.raises(TimeoutError, match="a unit's own timeout"):
            se.results_of(futures)


@pytest.mark.parametrize(
    ("module", "runner", "stem"),
    [
        (se, "run_benchmark", "search-efficiency"),
        (parallelism, "run", "parallelism"),
        (holdout, "run", "holdout"),
        (ladder, "run", "ladder"),
        (ceiling, "run", "ceiling"),
    ],
)
def test_a_signal_no_sweep_sees_still_stops_the_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: ModuleType, runner: str, stem: str
) -> None:
    # A signal after the last sweep's last decision (its last trial process still exiting) or
    # while cached runs load reaches no sweep's check: the run must still end as stopped.
    def finished_then_signalled(*args: object, **kwargs: object) -> dict[str, object]:
        os.kill(os.getpid(), signal.SIGTERM)
        return {"summary": {}, "target": {}}

    monkeypatch.setattr(module, runner, finished_then_signalled)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as stopped:
            module.main(["--quick", "--out", str(tmp_path)])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        se.STOP.clear()
    assert stopped.value.code == 130
    assert not (tmp_path / f"{stem}.json").exists()


@pytest.mark.parametrize("where", ["", "portable"])  # native numerics; --portable-numerics
def test_rerendering_the_committed_results_reproduces_them_exactly(
    where: str, tmp_path: Path
) -> None:
    # Every number is rebuilt from what the runs stored: a median over rounded compute
    # values once came out 0.001 R off the one measured.
    results = ROOT / "benchmarks" / "results" / where
    copy_caches(results, tmp_path, f"{se.STEM}.json", "ground-truth")
    run_module("benchmarks.search_efficiency", "--rerender", "--out", str(tmp_path))
    for name in (f"{se.STEM}.json", f"{se.STEM}.md"):
        assert (tmp_path / name).read_text() == (results / name).read_text(), (
            f"{name} differs from its rerendering: after changing the report, run "
            "`.venv/bin/python -m benchmarks.search_efficiency --rerender` and commit the result"
        )
