"""The held-out seeds check (`python -m benchmarks.holdout`).

Covers: the markdown puts the held-out share (with its 95% interval) next to the
benchmark's own and the pooled share, also judges the held-out cases with the benchmark's
seed sd, and marks each miss; `--quick` runs `adaptive` end to
end on the smoke settings at a seed the smoke benchmark does not use and writes holdout.json
and holdout.md with the reproduce command.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.holdout import markdown
from benchmarks.parallelism import Case, summarise
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
    "runs": [{"task": "a", "seed_sd": 0.6}, {"task": "b", "seed_sd": 0.05}],
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
    assert "seeds 0-4's seed sd instead, 4 of 4 held-out cases" in markdown(RESULT, BENCHMARK)


def test_markdown_marks_each_miss_with_its_seed_sd() -> None:
    text = markdown(RESULT, None)
    assert "| a | 6 | 0.2 | +50.00% | +20.00% | 4.00 R | **no** |" in text
    assert "pooled" not in text


def test_quick_run_writes_the_held_out_cases_and_the_command(tmp_path: Path) -> None:
    run_module("benchmarks.holdout", "--quick", "--out", str(tmp_path))
    result = json.loads((tmp_path / "holdout.json").read_text())
    (case,) = result["cases"]
    assert (case["seed"], case["parallelism"]) == (1, 4)
    assert case["chosen_lr"] > 0
    assert math.isfinite(case["regret"])
    assert "benchmarks.holdout --quick" in (tmp_path / "holdout.md").read_text()
