"""The ceiling (`python -m benchmarks.ceiling`): k full runs around a known optimum.

Covers: which k neighbouring rates the oracle trains (one window, or the mean of two that
sit equally near the centre); the centre is the rate with the lowest mean log ratio to each
other seed's best, and a rate that failed at any of them is out; the off-grid rates avoid
every dense rate; a case's share (a window whose runs all diverged misses); successive
halving keeps the rates best at the first comparison (never one diverged by then) and
costs every rate to it and the kept ones to the end; the summary per group of seeds and
pooled, with each halving shape's median compute; `adaptive`'s measured shares read from
the benchmarks' results; the report's rows and verdicts (4 R against the target, the best
halving within 4 R against 4 full runs); and a quick run beside the quick benchmark's
caches, which trains the off-grid rates once and reuses them, and finds that ground truth
holding on the machine that recorded it.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import archive, ceiling
from benchmarks.ceiling import OFF_GRID, ON_GRID, Case, centre, windows
from benchmarks.search_efficiency import GroundTruth, RatePoint
from tests.benchmarks.conftest import copy_caches
from tests.benchmarks.running import run_module

DENSE = [0.01, 0.02, 0.04, 0.08, 0.16]


def truth(seed: int, finals: list[float | None]) -> GroundTruth:
    points = tuple(
        RatePoint(lr, final, {}, "Succeeded" if final else "Stopped", 10)
        for lr, final in zip(DENSE, finals, strict=True)
    )
    return GroundTruth("t", seed, points)


def case(
    off: list[float | None],
    *,
    seed_sd: float = 0.05,
    group: int = 0,
    compared: list[float | None] | None = None,
) -> Case:
    """A case with these regrets at the off-grid rates (OFF_GRID's order), and these
    objectives at the first comparison (by default, as ranked as the regrets)."""
    at_comparison = compared or [None if r is None else 1 + r for r in off]
    return Case(
        task="t",
        seed=0,
        group=group,
        centre=0.04,
        seed_sd=seed_sd,
        off_grid=dict(zip(OFF_GRID, off, strict=True)),
        on_grid=dict.fromkeys(ON_GRID, 0.0),
        rates={o: 0.04 * 2**o for o in OFF_GRID},
        compared=dict(zip(OFF_GRID, at_comparison, strict=True)),
        comparison=1 / 3,
    )


def test_one_run_off_the_grid_is_either_neighbour_of_the_centre() -> None:
    assert windows(OFF_GRID, 1) == [(-0.5,), (0.5,)]


def test_two_runs_off_the_grid_straddle_the_centre() -> None:
    assert windows(OFF_GRID, 2) == [(-0.5, 0.5)]


def test_three_runs_on_the_grid_are_the_centre_and_its_neighbours() -> None:
    assert windows(ON_GRID, 3) == [(-1.0, 0.0, 1.0)]


def test_four_runs_on_the_grid_sit_two_ways_around_the_centre() -> None:
    assert windows(ON_GRID, 4) == [(-2.0, -1.0, 0.0, 1.0), (-1.0, 0.0, 1.0, 2.0)]


def test_the_centre_has_the_lowest_mean_log_ratio_to_each_seeds_best() -> None:
    # 0.04 is never best but always close; 0.02 and 0.08 are each best once and far off
    # once. Seed 2's scores are 100x seed 1's: by their plain mean, 0.08 would win.
    others = [truth(1, [5.0, 1.0, 1.1, 3.0, 9.0]), truth(2, [500.0, 300.0, 110.0, 100.0, 900.0])]
    assert centre(others) == 0.04


def test_a_rate_that_failed_at_another_seed_is_not_the_centre() -> None:
    others = [truth(1, [5.0, 2.0, 1.0, 3.0, 9.0]), truth(2, [5.0, 2.0, None, 3.0, 9.0])]
    assert centre(others) == 0.02


def test_the_off_grid_rates_sit_half_a_dense_step_off_the_grid() -> None:
    rates = ceiling.off_grid_rates(truth(0, [1.0] * 5), 0.04)
    assert not set(rates.values()) & set(DENSE)
    assert rates[-0.5] == pytest.approx(0.04 / 2**0.5, rel=1e-3)
    assert rates[1.5] == pytest.approx(0.04 * 2**1.5, rel=1e-3)


def test_the_on_grid_rates_are_the_dense_neighbours_and_none_past_the_end() -> None:
    rates = ceiling.on_grid_rates(truth(0, [1.0] * 5), 0.08)
    assert rates == {-3.0: 0.01, -2.0: 0.02, -1.0: 0.04, 0.0: 0.08, 1.0: 0.16, 2.0: None, 3.0: None}


def test_a_case_shares_the_hit_of_one_of_two_equally_near_windows() -> None:
    # k = 3 off the grid: (-1.5, -0.5, 0.5) holds the hit, (-0.5, 0.5, 1.5) does not.
    assert case([0.0, 0.0, 0.5, 0.5, 0.5, 0.0]).share(3, on_grid=False) == 0.5


def test_a_case_is_within_target_at_the_seed_sd() -> None:
    around = [None, None, 0.2, 0.3, None, None]
    assert case(around, seed_sd=0.25).share(2, on_grid=False) == 1.0
    assert case(around, seed_sd=0.15).share(2, on_grid=False) == 0.0


def test_a_window_whose_runs_all_diverged_misses() -> None:
    assert case([0.0, 0.0, None, None, 0.0, 0.0]).share(2, on_grid=False) == 0.0


def test_halving_keeps_the_rates_best_at_the_first_comparison() -> None:
    # Six rates, three kept: x1.66 and x2.33 are best at the end but worst when compared.
    late = case([0.5, 0.5, 0.5, 0.5, 0.0, 0.0], compared=[1.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    assert late.halving_share(6, 3) == 0.0
    assert late.halving_share(6, 5) == 1.0
    assert late.share(6, on_grid=False) == 1.0


def test_halving_never_keeps_a_rate_that_diverged_before_the_comparison() -> None:
    gone = case([0.0, 0.5, 0.5, 0.5, 0.5, 0.5], compared=[None, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert gone.halving_share(6, 5) == 0.0


def test_halving_costs_every_rate_to_the_comparison_and_the_kept_ones_to_the_end() -> None:
    assert case([0.0] * 6).halving_compute(6, 3) == pytest.approx(6 / 3 + 3 * 2 / 3)


def test_the_summary_gives_each_group_and_the_pooled_share() -> None:
    cases = [case([0.0] * 6, group=0), case([0.5] * 6, group=1), case([0.0] * 6, group=1)]
    summary = ceiling.summarise(cases, [(0, 1), (2, 3)])
    off = summary["2"]["off_grid"]
    assert off["per_group"] == {"0-1": 1.0, "2-3": 0.5}
    assert off["pooled"] == pytest.approx(2 / 3)
    assert summary["2"]["on_grid"]["pooled"] == 1.0
    halving = summary["halving"]["5-3"]
    assert halving["per_group"] == {"0-1": 1.0, "2-3": 0.5}
    assert halving["median_compute_r"] == pytest.approx(5 / 3 + 2)


def test_adaptives_measured_shares_come_from_the_benchmark_and_the_holdouts(
    tmp_path: Path,
) -> None:
    (tmp_path / "search-efficiency.json").write_text(
        json.dumps({"summary": {"adaptive": {"within_target": 23, "cases": 25}}})
    )
    holdout = {"summary": {"per_parallelism": {"4": {"within_target": 20, "cases": 25}}}}
    (tmp_path / "holdout-10-11-12-13-14.json").write_text(json.dumps(holdout))
    measured = ceiling.adaptive_measured(tmp_path, ceiling.GROUPS)
    assert measured == {"0-4": [23, 25], "10-14": [20, 25]}  # no holdout.json: 5-9 unknown


def result(regret: float) -> dict[str, Any]:
    """One case, with this regret at every rate."""
    one = case([regret] * len(OFF_GRID))
    return {
        "command": ".venv/bin/python -m benchmarks.ceiling --jobs 2",
        "groups": [[0, 1]],
        "summary": ceiling.summarise([one], [(0, 1)]),
        "adaptive": {"0-1": [4, 5]},
        "machine": {"cpu": "Some CPU", "torch": "2.13.0+cpu"},
        "cases": [
            {
                "task": "t",
                "seed": 0,
                "group": 0,
                "centre": 0.04,
                "seed_sd": 0.05,
                "off_grid": {str(o): r for o, r in one.off_grid.items()},
                "on_grid": {},
                "rates": {str(o): r for o, r in one.rates.items()},
                "compared": {str(o): r for o, r in one.compared.items()},
                "comparison": one.comparison,
            }
        ],
    }


def test_the_report_has_a_row_per_k_and_adaptives_measured_share() -> None:
    text = ceiling.markdown(result(0.0))
    assert "| 1 (1 R) | 100% | **100%** | 100% |" in text
    assert "| 2 (2 R) | 100% | **100%** | 100% |" in text
    assert "| `adaptive`, measured (about 4 R, its search included) | 80% | 80% | - |" in text
    assert "benchmarks.ceiling --jobs 2" in text


def test_the_report_names_the_machine_the_oracles_runs_were_made_on() -> None:
    assert "Run on Some CPU (torch 2.13.0+cpu)." in ceiling.markdown(result(0.0))


def test_the_report_labels_each_rate_by_its_ratio_to_the_centre() -> None:
    assert "| x0.18 | x0.35 | x0.71 | x1.41 | x2.83 | x5.66 |" in ceiling.markdown(result(0.0))


def test_the_report_marks_each_miss() -> None:
    assert "+50.00% (miss)" in ceiling.markdown(result(0.5))
    assert "(miss)" not in ceiling.markdown(result(0.0))


def test_the_report_has_a_row_per_halving_shape_with_its_compute() -> None:
    text = ceiling.markdown(result(0.0))
    assert "| 5, 3 | 3.67 R | 100% | **100%** |" in text
    assert "| 6, 4 | 4.67 R | 100% | **100%** |" in text
    assert "to its first comparison (33% of the budget here)" in text


def test_the_report_compares_the_best_halving_within_4_r_with_4_full_runs() -> None:
    text = ceiling.markdown(result(0.0))
    assert "within 4 R (5 rates, 3 kept: 100%) is at or above 4 full runs (100%)" in text
    halved = result(0.0)
    halved["summary"]["halving"]["5-3"]["pooled"] = 0.5
    assert "(6 rates, 3 kept: 100%) is at or above" in ceiling.markdown(halved)
    for shape in ("5-3", "6-3"):
        halved["summary"]["halving"][shape]["pooled"] = 0.5
    assert "(5 rates, 3 kept: 50%) is below 4 full runs (100%)" in ceiling.markdown(halved)


def test_the_report_says_4_r_reaches_the_target_and_with_how_many_runs() -> None:
    text = ceiling.markdown(result(0.0))
    assert "the target's 90% at 4 R is within what 4 R of training buys" in text
    assert "It takes 1 full run (100%)." in text


def test_the_report_says_when_not_even_the_most_runs_reach_the_target() -> None:
    text = ceiling.markdown(result(0.5))
    assert "the target's 90% at 4 R is beyond what 4 R of training buys" in text
    assert "Not even 6 full runs reach it (0%)." in text


def test_quick_run_trains_the_off_grid_rates_once(quick_benchmark: Path, tmp_path: Path) -> None:
    copy_caches(quick_benchmark, tmp_path, "search-efficiency.json", "ground-truth")
    done = run_module("benchmarks.ceiling", "--quick", "--out", str(tmp_path))
    # The quick benchmark's ground truth was recorded on this machine: it holds here.
    assert "warning:" not in done.stdout
    first = json.loads((tmp_path / "ceiling.json").read_text())
    assert [(c["task"], c["seed"]) for c in first["cases"]] == [("custom", 0), ("custom", 1)]
    assert all(len(c["off_grid"]) == len(OFF_GRID) for c in first["cases"])
    assert all(len(c["rates"]) == len(OFF_GRID) for c in first["cases"])
    assert any(v is not None for c in first["cases"] for v in c["compared"].values())
    assert any(r is not None for c in first["cases"] for r in c["off_grid"].values())
    cache = tmp_path / "ground-truth"
    assert len(fnmatch.filter(archive.read(cache), "custom-s*-ceiling-*")) == 2
    stamp = (cache / archive.NAME).stat().st_mtime_ns
    run_module("benchmarks.ceiling", "--quick", "--out", str(tmp_path))
    assert (cache / archive.NAME).stat().st_mtime_ns == stamp  # nothing trained or written
    assert json.loads((tmp_path / "ceiling.json").read_text())["cases"] == first["cases"]
    assert "| 4 (4 R) |" in (tmp_path / "ceiling.md").read_text()
