"""The parallelism benchmark (`python -m benchmarks.parallelism`).

Covers: `--quick` with two parallelism values runs `adaptive` end to end through real trial
processes on the smoke settings and writes parallelism.json and .md (one case per
(task, seed, parallelism) with a chosen rate, finite regret, compute above zero and its
range test's bounds; the reproduce command); the default parallelism's run comes from the
quick search-efficiency run's cache, and a second invocation takes every run from the caches
and reports the same cases. The summary (share within target,
median compute, mean regret, cases with the same choice at every parallelism) and the
markdown table are checked on hand-made cases; a report's header names the machine it ran on
(not for results from before that was recorded). `--portable-numerics` puts every task of
the holdout, ceiling, ladder and parallelism benchmarks on portable numerics.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import benchmarks.ceiling as ceiling
import benchmarks.holdout as holdout
import benchmarks.ladder as ladder
import benchmarks.parallelism as parallelism
from benchmarks.parallelism import Case, header, markdown, summarise
from benchmarks.search_efficiency import Settings, SweepInterruptedError
from tests.benchmarks.conftest import copy_caches
from tests.benchmarks.running import run_module


def _case(task: str, seed: int, p: int, lr: float, regret: float, compute: float) -> Case:
    return Case(task, seed, p, lr, regret, compute, within=regret <= 0.05)


CASES = [
    _case("a", 0, 2, 0.1, 0.01, 5.0),
    _case("a", 1, 2, 0.2, 0.30, 6.0),
    _case("b", 0, 2, 0.3, 0.00, 4.0),
    _case("a", 0, 4, 0.1, 0.01, 3.0),
    _case("a", 1, 4, 0.1, 0.02, 4.0),
    _case("b", 0, 4, 0.3, 0.00, 3.5),
]


def test_summary_counts_hits_median_compute_mean_regret_and_same_choices() -> None:
    summary = summarise(CASES)
    two, four = summary["per_parallelism"]["2"], summary["per_parallelism"]["4"]
    assert (two["within_target"], two["cases"]) == (2, 3)
    assert two["median_compute_r"] == 5.0
    assert math.isclose(two["mean_regret"], 0.31 / 3)
    assert (four["within_target"], four["median_compute_r"]) == (3, 3.5)
    assert (summary["same_choice"], summary["case_count"]) == (2, 3)


def test_markdown_has_the_command_a_summary_row_per_parallelism_and_a_row_per_case() -> None:
    result: dict[str, Any] = {
        "command": ".venv/bin/python -m benchmarks.parallelism",
        "engine": {"commit": "abc1234", "engine_sha256": "0123456789ab"},
        "parallelism": [2, 4],
        "summary": summarise(CASES),
        "cases": [asdict(c) for c in CASES],
        "cached_runs": 0,
    }
    text = markdown(result)
    assert ".venv/bin/python -m benchmarks.parallelism" in text
    assert "| 2 | 67% (2 of 3) | 5.00 R | +10.33% |" in text
    assert "| a | 1 | 0.2 / +30.00% (miss) / 6.00 R | 0.1 / +2.00% / 4.00 R |" in text
    assert "in 2 of 3 cases" in text


def test_a_reports_header_names_the_machine_its_runs_were_made_on() -> None:
    machine = {"cpu": "Some CPU", "python": "3.11.7", "torch": "2.13.0+cpu"}
    result: dict[str, Any] = {
        "command": "c",
        "engine": {"commit": "abc1234", "engine_sha256": "0123456789ab", "machine": machine},
        "cases": [],
        "cached_runs": 0,
    }
    text = "\n".join(header("t", result, "Same."))
    assert "Run on Some CPU (python 3.11.7, torch 2.13.0+cpu). Same." in text
    del result["engine"]["machine"]  # results from before it was recorded
    assert "Run on" not in "\n".join(header("t", result, "Same."))


def _run(out: Path) -> dict[str, Any]:
    run_module(
        "benchmarks.parallelism",
        *("--quick", "--out", str(out), "--parallelism", "1", "--parallelism", "4"),
    )
    result: dict[str, Any] = json.loads((out / "parallelism.json").read_text())
    return result


def test_quick_run_writes_a_case_per_parallelism_and_a_rerun_comes_from_the_cache(
    quick_benchmark: Path, tmp_path: Path
) -> None:
    copy_caches(quick_benchmark, tmp_path, "ground-truth", "cache")
    first = _run(tmp_path)
    # At the default parallelism the run is the search-efficiency benchmark's own.
    assert first["cached_runs"] == 1
    assert first["quick"] is True
    assert "benchmarks.parallelism --quick" in first["command"]
    assert sorted(c["parallelism"] for c in first["cases"]) == [1, 4]
    for case in first["cases"]:
        assert case["chosen_lr"] is not None, case
        assert case["chosen_lr"] > 0, case
        assert math.isfinite(case["regret"]), case
        assert case["compute_r"] > 0, case
        # Where adaptive's first round came from, for benchmarks.replay.
        assert 0 < case["range_test"]["adaptive_low"] < case["range_test"]["adaptive_high"]
    assert first["command"] in (tmp_path / "parallelism.md").read_text()

    again = _run(tmp_path)
    assert again["cached_runs"] == len(first["cases"])
    assert again["cases"] == first["cases"]


@pytest.mark.parametrize("module", [holdout, ceiling, ladder, parallelism])
@pytest.mark.parametrize("asked", [False, True])
def test_portable_numerics_reach_every_task_of_a_benchmark(
    module: ModuleType, asked: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Settings] = []

    def record(settings: Settings, *args: object, **kwargs: object) -> dict[str, Any]:
        ran.append(settings)
        raise SweepInterruptedError("enough")

    monkeypatch.setattr(module, "run", record)
    flags = ["--portable-numerics"] if asked else []
    with pytest.raises(SystemExit):
        module.main(["--quick", *flags, "--out", str(tmp_path)])
    (settings,) = ran
    assert [t.portable for t in settings.tasks] == [asked] * len(settings.tasks)
