"""The replay of `adaptive` on recorded runs (`python -m benchmarks.replay`).

Covers: a replayed trial takes the recorded run at the nearest rate (in log scale), its
exact values at the rungs and the full budget, falling from above the first rung before it,
and an infinite loss once a run that diverged stopped; the shifts spread over one dense step
around 1; a replayed sweep with the real engine finds a clear optimum among recorded runs
(with its refinement probe) and counts its range test's steps; a sweep whose trials all wait
at a rung raises instead of hanging; the recorded runs include every holdout file, each seed
counted in the first run that has it, with its range test and seed sd (holdout.json may be
missing), and a seed's runs include the ceiling's off-grid ones; the replayed tasks run on
the numerics the recorded benchmark used; the command replays the committed results, native
and portable, and reports the benchmarks' measured shares beside its estimate; without
recorded results it names the command that writes them.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.replay import (
    DENSE_STEP,
    START,
    Recorded,
    ReplayBackend,
    main,
    nearest,
    recorded_inputs,
    recorded_runs,
    replay,
    shifts,
    value_at,
)
from benchmarks.search_efficiency import (
    FULL,
    TASKS,
    GroundTruth,
    RatePoint,
    _save_cache,
    dense_rates,
    other_seeds_path,
    truth_path,
)
from lrsweep.engine import strategies
from lrsweep.engine.sweep import Launch
from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.following import StuckError
from tests.benchmarks.running import run_module

FINISHED = RatePoint(0.1, 0.2, {60: 0.8, 180: 0.4, 540: 0.2}, "Succeeded", 540)
DIVERGED = RatePoint(1.0, None, {60: 0.9}, "Diverged", 100)


def test_a_replayed_curve_has_the_recorded_values_at_the_rungs_and_the_full_budget() -> None:
    assert [value_at(FINISHED, s) for s in (60, 180, 540)] == [0.8, 0.4, 0.2]


def test_a_replayed_curve_falls_between_the_rungs_from_above_the_first() -> None:
    values = [value_at(FINISHED, s) for s in range(0, 541, 20)]
    assert values[0] == pytest.approx(START * 0.8)
    assert all(b <= a for a, b in itertools.pairwise(values))


def test_a_run_that_diverged_replays_as_infinite_from_where_it_stopped() -> None:
    assert value_at(DIVERGED, 60) == 0.9
    assert math.isinf(value_at(DIVERGED, 100))


def test_a_trial_follows_the_recorded_rate_nearest_in_log_scale() -> None:
    runs = [FINISHED, DIVERGED]
    assert nearest(runs, 0.3) is FINISHED  # 3x from 0.1, 3.3x from 1.0
    assert nearest(runs, 0.35) is DIVERGED


def test_shifts_spread_over_one_dense_step_around_one() -> None:
    scales = shifts(6)
    assert len(scales) == 6
    assert math.prod(scales) == pytest.approx(1.0)
    assert max(scales) / min(scales) < DENSE_STEP
    assert shifts(1) == [1.0]


def _bowl(task_steps: int, best: float) -> list[RatePoint]:
    """Recorded runs on the dense grid of digits-mlp: the lower the loss the nearer `best`,
    at every rung; rates above 30x `best` diverge."""
    runs = []
    for lr in dense_rates(FULL.tasks[0], FULL.dense_points):
        distance = abs(math.log10(lr / best))
        if lr > 30 * best:
            runs.append(RatePoint(lr, None, {60: 2.0}, "Diverged", 80))
            continue
        floor = 0.05 + distance
        rungs = {60: floor + 1.0, 180: floor + 0.3, task_steps: floor}
        runs.append(RatePoint(lr, floor, rungs, "Succeeded", task_steps))
    return runs


def test_a_replayed_sweep_finds_a_clear_optimum_and_counts_the_range_test() -> None:
    task = FULL.tasks[0]
    best = nearest([RatePoint(lr, 0, {}, "", 0) for lr in dense_rates(task, 35)], 0.18).lr
    runs = _bowl(task.steps, best)
    # adaptive searches the two decades below 0.4x the limit (0.004, 0.0186, 0.0862, 0.4);
    # the optimum lies between the two best, where the refinement probe lands.
    recorded_range = {"steepest": 0.3, "valley": 0.5, "minimum": 0.8, "divergence": 1.0}
    result = replay(task, 0, runs, 0.05, recorded_range, seed_sd=0.0)
    assert result.chosen_lr is not None
    assert nearest(runs, result.chosen_lr).lr == best
    assert result.regret == pytest.approx(0.0)
    assert result.within
    # The range test's 100 steps, 3 finalists to the full budget, 1 candidate cut at 1/3,
    # and the probe to the full budget.
    assert strategies.FINALISTS == 3
    assert result.compute_r == pytest.approx((100 + 3 * 540 + 180 + 540) / 540)


def test_a_sweep_whose_trials_all_wait_at_a_rung_raises_instead_of_hanging() -> None:
    backend = ReplayBackend([FINISHED])
    gated = Launch("t001", 1, 0.1, 0, "train", 540, 60, (180, 540), gated=True)
    backend.launch(gated)
    backend.launch(replace(gated, trial="t002"))
    polls = [backend.observe() for _ in range(3)]
    assert polls[-1][0].step == 180
    assert polls[-1][0].state is ProcessState.RUNNING
    assert polls[-1][0].outcome is None
    for _ in range(3):  # a few polls without progress may be the sweep deciding
        assert backend.observe() == []
    with pytest.raises(StuckError, match="t001"):
        backend.observe()


def test_a_replayed_trial_past_its_budget_finishes() -> None:
    backend = ReplayBackend([FINISHED])
    backend.launch(Launch("t001", 1, 0.1, 0, "train", 540, 270, (180, 540)))
    last = [backend.observe() for _ in range(2)][-1][0]
    assert (last.step, last.state, last.outcome) == (540, ProcessState.EXITED, Outcome.FINISHED)


def _holdout(seeds: range, sd: float) -> dict[str, object]:
    return {
        "seed_sd": {"a": sd},
        "cases": [{"task": "a", "seed": s, "range_test": {"valley": float(s)}} for s in seeds],
    }


def _write_results(path: Path) -> None:
    benchmark = {
        "runs": [{"task": "a", "seed": s, "strategy": "adaptive", "seed_sd": 0.1} for s in (0, 1)],
        "details": {f"a/s{s}/adaptive": {"range_test": {"valley": -1.0}} for s in (0, 1)},
    }
    files = {
        "search-efficiency": benchmark,
        "holdout": _holdout(range(5, 7), 0.2),
        "holdout-1-10-11": _holdout(range(10, 12), 0.3) | {"cases": _overlap()},
    }
    for stem, content in files.items():
        (path / f"{stem}.json").write_text(json.dumps(content))


def _overlap() -> list[dict[str, object]]:
    return [{"task": "a", "seed": s, "range_test": {"valley": float(s)}} for s in (1, 10, 11)]


def test_the_recorded_runs_include_every_holdout_file_each_seed_in_the_first_that_has_it(
    tmp_path: Path,
) -> None:
    _write_results(tmp_path)
    last = Recorded.load(tmp_path)
    assert last.seed_groups == {
        "0-1 (search-efficiency)": (0, 1),
        "5-6 (holdout)": (5, 6),
        "10-11 (holdout-1-10-11)": (10, 11),
    }
    ranges, sds = recorded_inputs(last)
    assert (ranges["a", 1], sds["a", 1]) == ({"valley": -1.0}, 0.1)
    assert (ranges["a", 6], sds["a", 6]) == ({"valley": 6.0}, 0.2)
    assert (ranges["a", 11], sds["a", 11]) == ({"valley": 11.0}, 0.3)


def test_the_recorded_runs_of_a_seed_include_those_off_the_grid_the_ceiling_trained(
    tmp_path: Path,
) -> None:
    task = TASKS[0]
    cache = tmp_path / "ground-truth"

    def runs(*rates: float) -> GroundTruth:
        points = tuple(RatePoint(lr, 1.0, {}, "Succeeded", task.steps) for lr in rates)
        return GroundTruth(task.name, 0, points)

    _save_cache(*truth_path(cache, task, 0, FULL), task, runs(*dense_rates(task, 35)))
    _save_cache(*other_seeds_path(cache, task, 0), task, runs(0.0123))
    _save_cache(*other_seeds_path(cache, task, 0, "ceiling"), task, runs(0.0456, 0.0789))
    recorded = recorded_runs(tmp_path, task, 0)
    assert recorded is not None
    rates = {p.lr for p in recorded[0]}
    assert {0.0123, 0.0456, 0.0789} <= rates
    assert len(rates) == 35 + 3


def test_the_recorded_runs_need_no_holdout_file_for_seeds_5_to_9(tmp_path: Path) -> None:
    _write_results(tmp_path)
    (tmp_path / "holdout.json").unlink()
    assert Recorded.load(tmp_path).seed_groups == {
        "0-1 (search-efficiency)": (0, 1),
        "10-11 (holdout-1-10-11)": (10, 11),
    }


@pytest.mark.parametrize(("numerics", "expected"), [(None, False), ("portable", True)])
def test_the_replayed_tasks_run_on_the_numerics_the_recorded_benchmark_used(
    tmp_path: Path, numerics: str | None, expected: bool
) -> None:
    _write_results(tmp_path)
    path = tmp_path / "search-efficiency.json"
    benchmark = json.loads(path.read_text())
    benchmark["settings"] = {} if numerics is None else {"numerics": numerics}
    path.write_text(json.dumps(benchmark))
    tasks = Recorded.load(tmp_path).tasks(["regression", "char-lm"])
    assert [t.name for t in tasks] == ["regression", "char-lm"]
    assert {t.portable for t in tasks} == {expected}


@pytest.mark.e2e
def test_the_command_replays_the_committed_results_beside_the_measured_shares() -> None:
    done = run_module("benchmarks.replay", "--shifts", "1", "--task", "regression", timeout=300)
    assert "| pooled | 15 |" in done.stdout
    assert "seeds 0-4 (search-efficiency):" in done.stdout
    assert "seeds 5-9 (holdout):" in done.stdout
    assert "seeds 10-14 (holdout-10-11-12-13-14):" in done.stdout


@pytest.mark.e2e
def test_the_command_replays_the_runs_recorded_on_portable_numerics() -> None:
    done = run_module(
        "benchmarks.replay",
        *("--shifts", "1", "--task", "regression"),
        *("--results", "benchmarks/results/portable"),
        timeout=300,
    )
    assert "no recorded runs" not in done.stdout
    assert "| pooled | 15 |" in done.stdout
    assert "seeds 0-4 (search-efficiency): 72%" in done.stdout
    assert "seeds 5-9 (holdout): 76%" in done.stdout
    assert "seeds 10-14 (holdout-10-11-12-13-14): 84%" in done.stdout


def test_an_unknown_task_is_refused_with_the_known_ones() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.replay", "--task", "nope"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "unknown task(s) nope; known: digits-mlp" in done.stderr


def test_missing_results_name_the_command_that_writes_them(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"benchmarks\.search_efficiency --jobs 2` first"):
        main(["--results", str(tmp_path)])
