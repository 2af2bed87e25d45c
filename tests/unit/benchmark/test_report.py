"""The benchmark's scores and report (`lrsweep.benchmark.report`).

Covers: regret is score / best - 1 for a metric minimized and best / score - 1 for one
maximized, and none where a ratio means nothing; the dense best breaks ties towards the
lower rate; the JSON report is strict (an infinite score is null); the table marks the
document's own strategy; over several seeds each strategy's mean and worst regret and
median compute are summarized, with no mean where a pick has no regret.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from lrsweep.api import Goal
from lrsweep.benchmark.report import Report, Row, Truth, best_of, regret, summarize, table


def test_regret_of_a_minimized_metric_is_score_over_best_minus_one() -> None:
    assert regret(0.55, 0.5, Goal.MINIMIZE) == pytest.approx(0.1)


def test_regret_of_a_maximized_metric_is_best_over_score_minus_one() -> None:
    assert regret(0.45, 0.5, Goal.MAXIMIZE) == pytest.approx(0.5 / 0.45 - 1)


@pytest.mark.parametrize(("score", "best"), [(None, 0.5), (math.inf, 0.5), (-0.1, 0.5)])
def test_regret_is_none_where_a_ratio_means_nothing(score: float | None, best: float) -> None:
    assert regret(score, best, Goal.MINIMIZE) is None


def test_the_dense_best_breaks_ties_towards_the_lower_rate() -> None:
    assert best_of({0.1: 0.2, 0.01: 0.2, 1.0: None}, Goal.MINIMIZE) == (0.01, 0.2)


def _report(score: float) -> Report:
    truth = Truth(0, 0.1, 0.2, {0.1: 0.2, 1.0: None})
    row = Row("grid", 0, 1.0, score, None, 2.5, 2, "")
    return Report(
        document="sweep.yaml", name="demo", strategy="grid", metric="val_loss",
        goal=Goal.MINIMIZE, steps=30, search=(0.1, 1.0), ratio=10.0, dense_rates=(0.1, 1.0),
        seeds=(0,), cache=".lrsweep-benchmark/x", runs_trained=2, runs_recorded=2,
        truths=(truth,), rows=(row,),
    )  # fmt: skip


def test_the_json_report_is_strict_an_infinite_score_is_null(tmp_path: Path) -> None:
    as_json, _ = _report(math.inf).write(tmp_path)
    data = json.loads(as_json.read_text())
    assert data["rows"][0]["score"] is None
    assert data["truths"][0]["scores"] == {"0.1": 0.2, "1.0": None}


def test_the_table_marks_the_documents_own_strategy() -> None:
    console = Console(width=120, record=True)
    console.print(table(_report(0.3)))
    assert "grid (yours)" in console.export_text()


def test_over_several_seeds_each_strategy_gets_its_mean_worst_regret_and_median_compute() -> None:
    rows = (
        Row("adaptive", 0, 0.1, 0.2, 0.0, 4.0, 5, ""),
        Row("grid", 0, 1.0, 0.3, 0.5, 8.0, 8, ""),
        Row("adaptive", 1, 0.1, 0.2, 0.1, 5.0, 6, ""),
        Row("grid", 1, 1.0, 0.3, 0.3, 8.0, 8, ""),
        Row("adaptive", 2, 0.1, 0.2, 0.2, 4.5, 6, ""),
        Row("grid", 2, 1.0, 0.3, 0.1, 8.0, 8, ""),
    )
    adaptive, grid = summarize(rows)
    assert (adaptive.strategy, adaptive.seeds) == ("adaptive", 3)
    assert adaptive.mean_regret == pytest.approx(0.1)
    assert adaptive.worst_regret == pytest.approx(0.2)
    assert adaptive.median_compute_r == 4.5
    assert grid.mean_regret == pytest.approx(0.3)


def test_a_strategy_whose_pick_has_no_regret_gets_no_mean() -> None:
    rows = (
        Row("random", 0, 0.1, 0.2, 0.1, 4.0, 5, ""),
        Row("random", 1, 3.0, None, None, 1.0, 2, ""),
    )
    (random,) = summarize(rows)
    assert random.mean_regret is None
    assert random.worst_regret is None
