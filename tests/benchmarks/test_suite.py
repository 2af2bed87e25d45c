"""The search benchmark's task suite and harness (benchmarks/suite)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from benchmarks.suite import curves, runs
from benchmarks.suite.tasks import BY_NAME, FRESH, HELDOUT, RESERVE, TASKS, TUNING, UNSEEN
from tests.benchmarks.running import ROOT

TASK = BY_NAME["adam-blobs"]  # the fastest task: a full run takes a tenth of a second


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Trials run on one thread, as the trainer and the benchmark's workers run them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_suite_declares_ten_or_more_tasks_split_into_tuning_and_held_out() -> None:
    assert len(TASKS) >= 10
    assert len(BY_NAME) == len(TASKS)
    assert {t.name for t in TUNING}.isdisjoint(t.name for t in HELDOUT)
    assert len(TUNING) >= 5
    assert len(HELDOUT) >= 5


def test_the_fresh_set_shares_no_task_with_the_others() -> None:
    assert len(FRESH) >= 5
    assert not {t.name for t in FRESH} & {t.name for t in TUNING + HELDOUT}


def test_the_unseen_set_shares_no_task_with_the_others() -> None:
    assert len(UNSEEN) >= 5
    assert not {t.name for t in UNSEEN} & {t.name for t in TUNING + HELDOUT + FRESH}


def test_the_reserve_set_shares_no_task_with_the_others() -> None:
    assert len(RESERVE) >= 5
    assert not {t.name for t in RESERVE} & {t.name for t in TUNING + HELDOUT + FRESH + UNSEEN}


def test_a_trial_stopped_early_saw_the_start_of_the_full_run() -> None:
    full = curves.run(TASK, 0, 0.01)
    part = curves.run(TASK, 0, 0.01, until=60)
    assert part.end == 60
    assert part.points == full.upto(60).points
    assert full.final(TASK.metric, TASK.steps) is not None
    assert part.final(TASK.metric, TASK.steps) is None


def test_the_store_trains_each_rate_once_and_keeps_it_on_disk(tmp_path: Path) -> None:
    store = curves.Store(TASK, 0, tmp_path)
    first = store.train(0.01)
    assert store.train(0.01, until=100) == first.upto(100)
    assert store.steps_trained == TASK.steps
    store.save()
    assert curves.Store(TASK, 0, tmp_path).train(0.01) == first


def test_a_store_at_another_cadence_evaluates_there_and_keeps_its_own_file(
    tmp_path: Path,
) -> None:
    usual = curves.Store(TASK, 0, tmp_path)
    other = curves.Store(TASK, 0, tmp_path, eval_every=7)
    curve = other.train(0.01)
    steps = [p.step for p in curve.points]
    assert steps[:3] == [7, 14, 21]
    assert steps[-1] == TASK.steps
    assert curve.final(TASK.metric, TASK.steps) == usual.train(0.01).final(TASK.metric, TASK.steps)
    assert other.path != usual.path


def test_a_diverging_rate_ends_its_curve_early() -> None:
    curve = curves.run(TASK, 0, 3.0)
    assert curve.diverged
    assert curve.end < TASK.steps
    assert curve.final(TASK.metric, TASK.steps) is None


def test_the_engine_on_curves_decides_as_lrsweep_run_on_the_script(tmp_path: Path) -> None:
    doc = runs.sweep_doc(TASK, 0, {}, python=sys.executable)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(doc.model_dump(mode="json", exclude_none=True)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lrsweep.cli", "run", str(spec), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    status = json.loads((tmp_path / "o" / "result.json").read_text())
    stores: dict[int, curves.Store] = {}
    result, decision = runs.engine(
        TASK, 0, lambda s: stores.setdefault(s, curves.Store(TASK, s, None)), "adaptive", {}
    )
    assert result.rate == status["bestLearningRate"]
    local = {t: (s["learningRate"], s["phase"]) for t, s in status["trials"].items()}
    simulated = {r.id: (r.learning_rate, r.phase.value) for r in decision.records}
    assert simulated == local


def test_optuna_spends_its_budget_and_picks_a_trial_that_ran_to_the_end() -> None:
    store = curves.Store(TASK, 0, None)
    result = runs.optuna_run(TASK, 0, store, "sha", 2.0)
    assert result.rate is not None
    assert result.compute_r >= 2.0
    assert store.train(result.rate).final(TASK.metric, TASK.steps) is not None


def test_torch_lr_finder_is_charged_its_range_test_and_one_full_run() -> None:
    result = runs.lr_finder_run(TASK, 0)
    assert result.rate is not None
    assert curves.SEARCH_MIN < result.rate < curves.SEARCH_MAX
    # Its range test stops where the loss blows up, at most after its 100 iterations.
    assert 1.0 < result.compute_r <= runs.LR_FINDER_ITERATIONS / TASK.steps + 1


def test_the_oracle_trains_four_rates_sqrt_2_apart_around_its_centre() -> None:
    rates = runs.oracle(0.01)
    assert len(rates) == 4
    ratios = [b / a for a, b in itertools.pairwise(rates)]
    assert ratios == pytest.approx([2**0.5] * 3, rel=1e-3)
    assert rates[1] < 0.01 < rates[2]
