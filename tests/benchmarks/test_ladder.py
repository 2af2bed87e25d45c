"""The rung-ladder benchmark (`python -m benchmarks.ladder`).

Covers: a ladder starts at steps / D, rounded to an evaluation as every budget's rungs are,
and keeps the task's ground-truth key apart from the run's; `--quick` with two divisors
runs `adaptive` end to end through real trial processes on the smoke settings and writes
ladder.json and .md (one case per (task, seed, divisor) with a chosen rate, finite regret,
compute above zero and the rungs it compared at; the benchmark's own ladder comes from the
quick search-efficiency run's cache); the summary per divisor, the markdown table and how
many choices each ladder shares with the benchmark's are checked on hand-made cases;
`--seed` runs other seeds into a report of their own, which says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks import ladder
from benchmarks.ladder import Case, laddered, markdown
from benchmarks.parallelism import summarise_by
from benchmarks.search_efficiency import FULL, TASKS, Settings, quick_settings
from tests.benchmarks.conftest import copy_caches
from tests.benchmarks.running import run_module

DIGITS = next(t for t in TASKS if t.name == "digits-mlp")  # 540 steps, evaluated every 20


def test_the_benchmarks_own_ladder_is_divisor_nine() -> None:
    for task in TASKS:
        assert laddered(task, 9) == task


@pytest.mark.parametrize(
    ("divisor", "rungs"),
    [(9, [60, 180]), (10, [60, 160, 480]), (27, [20, 60, 180])],
)
def test_a_ladder_starts_at_steps_over_the_divisor_on_an_evaluation(
    divisor: int, rungs: list[int]
) -> None:
    assert laddered(DIGITS, divisor).rungs == rungs


def test_a_ladder_is_a_different_run_but_the_same_task(tmp_path: Path) -> None:
    from benchmarks.search_efficiency import RunCache

    cache = RunCache(tmp_path, "code")
    assert cache.path(laddered(DIGITS, 27), 0, "adaptive", {}) != cache.path(
        DIGITS, 0, "adaptive", {}
    )
    assert laddered(DIGITS, 27).name == DIGITS.name


def _case(task: str, seed: int, d: int, lr: float, regret: float, compute: float) -> Case:
    return Case(task, seed, d, [180] if d == 9 else [60, 180], lr, regret, compute, regret <= 0.05)


CASES = [
    _case("a", 0, 9, 0.1, 0.01, 4.0),
    _case("a", 1, 9, 0.2, 0.02, 4.0),
    _case("a", 0, 27, 0.1, 0.01, 3.0),
    _case("a", 1, 27, 0.3, 0.40, 2.0),
]


def _result(cases: list[Case]) -> dict[str, Any]:
    """What `run` returns for `cases` at divisors 9 and 27."""
    return {
        "command": ".venv/bin/python -m benchmarks.ladder",
        "engine": {"commit": "abc1234", "engine_sha256": "0123456789ab"},
        "divisors": [9, 27],
        "summary": summarise_by(cases, lambda c: c.divisor),
        "cases": [asdict(c) for c in cases],
        "cached_runs": 0,
    }


def test_the_summary_is_per_divisor() -> None:
    per = summarise_by(CASES, lambda c: c.divisor)["per"]
    assert (per["9"]["within_target"], per["9"]["median_compute_r"]) == (2, 4.0)
    assert (per["27"]["within_target"], per["27"]["median_compute_r"]) == (1, 2.5)
    assert math.isclose(per["27"]["mean_regret"], 0.205)


def test_markdown_has_a_row_per_divisor_with_its_comparisons_and_a_row_per_case() -> None:
    text = markdown(_result(CASES))
    assert "| 27 | 50% (1 of 2) | 2.50 R | +20.50% | a: 60, 180 |" in text
    assert "| a | 1 | 0.2 / +2.00% / 4.00 R | 0.3 / +40.00% (miss) / 2.00 R |" in text
    assert "with every ladder in 1 of 2 cases" in text


def test_quick_run_writes_a_case_per_divisor(quick_benchmark: Path, tmp_path: Path) -> None:
    copy_caches(quick_benchmark, tmp_path, "ground-truth", "cache")
    run_module(
        "benchmarks.ladder",
        *("--quick", "--out", str(tmp_path), "--divisor", "3", "--divisor", "9"),
    )
    result = json.loads((tmp_path / "ladder.json").read_text())
    # minSteps = steps / 9 is the quick benchmark's own budget: that run is its cached one.
    assert result["cached_runs"] == 1
    (task,) = quick_settings().tasks
    by_divisor = {c["divisor"]: c for c in result["cases"]}
    assert sorted(by_divisor) == [3, 9]
    # 108 steps from 36 by 3: the first comparison would be the full run, so none.
    assert by_divisor[3]["comparisons"] == []
    assert by_divisor[9]["comparisons"] == task.rungs[1:]
    for case in result["cases"]:
        assert case["chosen_lr"] is not None, case
        assert math.isfinite(case["regret"]), case
        assert case["compute_r"] > 0, case
    assert result["command"] in (tmp_path / "ladder.md").read_text()


def test_markdown_counts_the_choices_each_ladder_shares_with_the_benchmarks() -> None:
    cases = [*CASES, _case("b", 0, 9, 0.5, 0.0, 4.0), _case("b", 0, 27, 0.5, 0.0, 3.0)]
    assert "(D = 9): D = 27 in 2 of 3 cases." in markdown(_result(cases))


def test_seeds_named_run_instead_of_the_benchmarks_into_a_report_of_their_own(
    tmp_path: Path,
) -> None:
    ran: list[Settings] = []

    def run_all(settings: Settings, values: Sequence[int], /, **_: Any) -> dict[str, Any]:
        ran.append(settings)
        result = _result(CASES)
        return {**result, "seeds": list(settings.seeds), "quick": False}

    argv = ["--out", str(tmp_path), "--seed", "6", "--seed", "5", "--divisor", "9"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ladder, "run", run_all)
        ladder.main(argv)
    assert [s.seeds for s in ran] == [(5, 6)]
    assert ran[0].tasks == FULL.tasks
    assert not (tmp_path / "ladder.json").exists()
    report = (tmp_path / "ladder-5-6.md").read_text()
    assert "On seeds 5, 6, not the benchmark's" in report
    assert json.loads((tmp_path / "ladder-5-6.json").read_text())["seeds"] == [5, 6]


def test_a_report_on_the_benchmarks_seeds_says_nothing_of_other_seeds() -> None:
    assert "not the benchmark's" not in markdown({**_result(CASES), "seeds": [0, 1, 2, 3, 4]})
