"""benchmarks.budget_defaults: a sweep that gives only budget.steps, against the suite's."""

from __future__ import annotations

import pytest
import torch

from benchmarks import budget_defaults
from benchmarks.suite.__main__ import score_cases


@pytest.fixture(scope="module")
def adam_blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One case of the fastest task (200 steps, shorter than the old fixed first rung)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        case = budget_defaults.case("adam-blobs", 0, tmp_path_factory.mktemp("curves"))
    finally:
        torch.set_num_threads(before)
    score_cases([case])
    return case


def _result(case: dict[str, object], budget: str) -> dict[str, object]:
    results = case["results"]
    assert isinstance(results, list)
    return next(r for r in results if r["strategy"] == budget)


def test_the_old_fixed_first_rung_is_refused_on_a_short_task(adam_blobs: dict[str, object]) -> None:
    refused = _result(adam_blobs, budget_defaults.FIXED)
    assert refused["refused"] == (
        "spec.budget: minSteps (300) must not exceed steps (200); "
        "set budget.minSteps to at most 200 or raise budget.steps"
    )


def test_steps_alone_sweeps_with_defaults_that_follow_them(adam_blobs: dict[str, object]) -> None:
    alone = _result(adam_blobs, budget_defaults.STEPS_ONLY)
    assert (alone["eval_every"], alone["min_steps"]) == (6, 20)
    assert alone["rate"] is not None
    assert alone["regret"] is not None


def test_the_report_counts_refusals_apart_from_the_cases_that_ran(
    adam_blobs: dict[str, object],
) -> None:
    rows = {row["budget"]: row for row in budget_defaults.summary([adam_blobs])}
    assert rows[budget_defaults.FIXED]["refused"] == 1
    assert rows[budget_defaults.FIXED]["median_r"] is None
    assert rows[budget_defaults.STEPS_ONLY]["refused"] == 0
    assert rows[budget_defaults.SUITE]["within"] + rows[budget_defaults.SUITE]["refused"] <= 1
