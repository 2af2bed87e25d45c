"""The held-out seeds check (`python -m benchmarks.holdout`).

Covers: the markdown puts the held-out share (with its 95% interval) next to the
benchmark's own and the pooled share, also judges the held-out cases with the benchmark's
seed sd, and marks each miss, but does not pool seeds the benchmark also ran (it says how
many of the benchmark's choices a rerun of its seeds repeats); `--quick` runs
seed 1 (a seed the smoke benchmark does not use) unless `--seed` names others; the report
says whether its seeds were among those the defaults were chosen on; `--quick --seed 0`
beside the quick benchmark's caches writes holdout-0.json and holdout-0.md (named seeds
name the files, so the default seeds' report stays) with the reproduce command.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import benchmarks.holdout as holdout
from benchmarks.holdout import markdown
from benchmarks.parallelism import Case, summarise
from benchmarks.search_efficiency import Settings, SweepInterruptedError
from tests.benchmarks.conftest import copy_caches
from tests.benchmarks.running import run_module

CASES = [
    Case("a", 5, 4, 0.1, 0.01, 3.0, within=True),
    Case("a", 6, 4, 0.2, 0.50, 4.0, within=False),
    Case("b", 5, 4, 0.3, 0.00, 3.5, within=True),
    Case("b", 6, 4, 0.3, -0.10, 5.0, within=True),
]
RESULT: dict[str, Any] = {
    "command": ".venv/bin/python -m benchmarks.holdout",
    "engine": {"commit": "abc1234", "engine_sha256": "0123456789ab"},
    "seed_sd": {"a": 0.2, "b": 0.05},
    "summary": summarise(CASES),
    "cases": [asdict(c) for c in CASES],
    "cached_runs": 0,
}
BENCHMARK = {
    "runs": [
        {"task": task, "seed": seed, "strategy": "adaptive", "chosen_lr": lr, "seed_sd": sd}
        for task, lr, sd in (("a", 0.1, 0.6), ("b", 0.3, 0.05))
        for seed in range(5)
    ],
    "summary": {
        "adaptive": {
            "cases": 25,
            "within_target": 21,
            "median_compute_r": 3.696,
            "mean_regret": 0.08095,
        }
    },
}


def test_markdown_puts_the_held_out_share_next_to_the_benchmarks_and_the_pooled_one() -> None:
    text = markdown(RESULT, BENCHMARK)
    assert "| 0-4 (search-efficiency.md) | 25 | 84% (21 of 25; 95% interval 64%-95%) |" in text
    assert "| 5-6 (this run) | 4 | 75% (3 of 4; 95% interval 19%-99%) | 3.75 R | +10.25% |" in text
    assert "| both, pooled | 29 | 83% (24 of 29; 95% interval 64%-94%) | - | - |" in text


def test_markdown_also_judges_the_held_out_cases_with_the_benchmarks_seed_sd() -> None:
    assert "seeds 0-4's seed sd instead, 4 of 4 cases of this run" in markdown(RESULT, BENCHMARK)


def test_markdown_pools_the_shares_with_the_seed_sd_read_from_each_seeds_best_score() -> None:
    result = {**RESULT, "seed_sd_of_best_scores": {"a": 0.6, "b": 0.0}}
    benchmark = {**BENCHMARK, "tolerance_by_best_scores": {"within_target": {"adaptive": 22}}}
    text = markdown(result, benchmark)
    # a 6 (+50%) is within 60%; b 5 (0%) within 1%; b 6 (-10%) too: 4 of 4, 26 of 29 pooled.
    assert "(a 60.0%, b 0.0%), 4 of 4 cases of this run are within target" in text
    assert "read the same way 26 of 29 (90%; 95% interval 73%-98%)" in text


def test_markdown_leaves_out_the_other_reading_for_results_without_it() -> None:
    assert "each seed's best dense-grid score" not in markdown(RESULT, BENCHMARK)


def test_markdown_marks_each_miss_with_its_seed_sd() -> None:
    text = markdown(RESULT, None)
    assert "| a | 6 | 0.2 | +50.00% | +20.00% | 4.00 R | **no** |" in text
    assert "pooled" not in text


def test_markdown_does_not_pool_seeds_the_benchmark_also_ran() -> None:
    overlapping = {**RESULT, "cases": [{**c, "seed": 4} for c in RESULT["cases"]]}
    text = markdown(overlapping, BENCHMARK)
    assert "| both | not pooled: seeds [4] are in both |" in text
    assert "pooled |" not in text


def test_markdown_says_how_often_a_rerun_of_the_benchmarks_seeds_chose_as_it_did() -> None:
    overlapping = {**RESULT, "cases": [{**c, "seed": 4} for c in RESULT["cases"]]}
    text = markdown(overlapping, BENCHMARK)
    # The benchmark chose 0.1 for a and 0.3 for b; this run 0.1 and 0.2 for a, 0.3 for b.
    assert "its `adaptive` cases again, at the engine above" in text
    assert "choosing the same rate as it did in 3 of 4." in text
    assert "seeds that benchmark does not run" not in text


def test_markdown_does_not_pool_the_other_reading_for_seeds_the_benchmark_also_ran() -> None:
    overlapping = {
        **RESULT,
        "cases": [{**c, "seed": 4} for c in RESULT["cases"]],
        "seed_sd_of_best_scores": {"a": 0.6, "b": 0.0},
    }
    benchmark = {**BENCHMARK, "tolerance_by_best_scores": {"within_target": {"adaptive": 22}}}
    text = markdown(overlapping, benchmark)
    assert "4 of 4 cases of this run are within target (the benchmark's, read the same way: " in (
        text
    )
    assert "22 of 25)" in text
    assert "read the same way 26 of 29" not in text


def test_markdown_says_seeds_above_9_are_out_of_sample() -> None:
    later = {**RESULT, "cases": [{**c, "seed": c["seed"] + 5} for c in RESULT["cases"]]}
    text = markdown(later, BENCHMARK)
    assert "never run while the engine's defaults were chosen" in text
    assert "not out of sample" not in text


def test_markdown_says_which_seeds_the_defaults_were_chosen_on() -> None:
    text = markdown(RESULT, BENCHMARK)
    assert "so seeds [5, 6] are not out of sample" in text
    assert "never run while" not in text


def test_quick_runs_seed_1_unless_seeds_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, ...]] = []

    def record(settings: Settings, *args: object, **kwargs: object) -> dict[str, Any]:
        asked.append(settings.seeds)
        raise SweepInterruptedError("enough")

    monkeypatch.setattr(holdout, "run", record)
    for argv in (["--quick"], ["--quick", "--seed", "3", "--seed", "2"]):
        with pytest.raises(SystemExit):
            holdout.main([*argv, "--out", str(tmp_path)])
    assert asked == [(1,), (2, 3)]


def test_quick_run_writes_the_held_out_cases_and_the_command(
    quick_benchmark: Path, tmp_path: Path
) -> None:
    # The quick benchmark's seed, from its caches: the runs are the benchmark's own (the
    # parallelism test runs the same code on a run the caches lack).
    copy_caches(quick_benchmark, tmp_path, "search-efficiency.json", "ground-truth", "cache")
    run_module("benchmarks.holdout", "--quick", "--seed", "0", "--out", str(tmp_path))
    assert not (tmp_path / "holdout.json").exists()
    result = json.loads((tmp_path / "holdout-0.json").read_text())
    (case,) = result["cases"]
    assert (case["seed"], case["parallelism"]) == (0, 4)
    assert result["cached_runs"] == 1
    assert case["chosen_lr"] > 0
    assert math.isfinite(case["regret"])
    report = (tmp_path / "holdout-0.md").read_text()
    assert "benchmarks.holdout --quick --seed 0" in report
    assert "not pooled: seeds [0] are in both" in report
