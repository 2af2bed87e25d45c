"""Smoke test of the search-efficiency benchmark (`python -m benchmarks.search_efficiency`).

Covers: `--quick --out DIR` runs end to end through real trial processes (the user's own
script trainer/examples/custom_train.py, swept with `command:`, on a coarse dense grid) and
writes search-efficiency.json, .md and .png into DIR, with the ground truth cached under
DIR/ground-truth; the JSON has the default strategy, the reproduce command, one run per
strategy with a chosen rate, finite regret and compute above zero, the seed spread, a
summary per strategy, the target check, a short-horizon correlation per task, and the
determinism check (full runs of the same rate and seed score the same in every sweep);
the noise floor has full runs 2% either side of the dense best, cached beside the ground
truth; the markdown carries the reproduce command; `--rerender` rebuilds the same JSON and markdown
from the stored runs and the cached ground truth without running anything. Helpers
(Spearman with ties, the seed spread, the low-first-rung flag) are checked on small
hand-made inputs.

The full benchmark is not part of the test suite; it runs with
`python -m benchmarks.search_efficiency --jobs 2` (see benchmarks/results/search-efficiency.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.search_efficiency import (
    STRATEGIES,
    GroundTruth,
    RatePoint,
    seed_spread,
    spearman,
)
from benchmarks.search_efficiency_report import low_first_rung

ROOT = Path(__file__).resolve().parents[2]


def _truth(seed: int, finals: dict[float, float | None]) -> GroundTruth:
    points = tuple(
        RatePoint(lr, final, {}, "Succeeded" if final else "Diverged", 10)
        for lr, final in finals.items()
    )
    return GroundTruth("t", seed, points)


def test_spearman_handles_ties_and_reversed_orders() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Diverged rates rank last together (ties share their mean rank).
    assert spearman([1, 2, 3, 4], [1, 2, math.inf, math.inf]) == pytest.approx(
        4.5 / math.sqrt(5 * 4.5)
    )
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_alow_first_rung_is_flagged_from_the_contenders_mean_correlation() -> None:
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


@pytest.mark.e2e
def test_quick_benchmark_writes_sane_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.search_efficiency",
            "--quick",
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "search-efficiency.json").read_text())

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

    cache = [
        p for p in (tmp_path / "ground-truth").glob("custom-s0-*.json") if "nudged" not in p.name
    ]
    assert len(cache) == 1
    truth = json.loads(cache[0].read_text())
    assert len(truth["rates"]) == result["settings"]["dense_points"]
    assert any(p["final"] is not None for p in truth["rates"])

    # The noise floor: full runs 2% either side of the dense best, at the same seed.
    floor = result["noise_floor"]
    best_lr = result["tasks"]["custom"]["dense_best"]["0"]["lr"]
    nudged = sorted(r["lr"] for r in floor["runs"])
    assert nudged[0] == pytest.approx(best_lr / floor["nudge"], rel=1e-3)
    assert nudged[1] == pytest.approx(best_lr * floor["nudge"], rel=1e-3)
    assert floor["within_target"] == sum(r["within_target"] for r in floor["runs"])
    assert len(list((tmp_path / "ground-truth").glob("custom-s0-nudged-*.json"))) == 1

    report = (tmp_path / "search-efficiency.md").read_text()
    assert result["command"] in report
    assert "Target met" in report
    assert (tmp_path / "search-efficiency.png").read_bytes().startswith(b"\x89PNG")

    # --rerender rebuilds the report from the stored runs and cached ground truth alone.
    (tmp_path / "search-efficiency.md").unlink()
    again = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.search_efficiency"),
            *("--quick", "--rerender", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    rerendered = json.loads((tmp_path / "search-efficiency.json").read_text())
    assert rerendered["runs"] == result["runs"]
    assert rerendered["summary"] == result["summary"]
    assert (tmp_path / "search-efficiency.md").read_text() == report
