"""benchmarks.spans: adaptive swept over several search ranges, scored like the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import spans
from benchmarks.suite import curves
from benchmarks.suite.__main__ import score_cases
from benchmarks.suite.tasks import BY_NAME

TASK = BY_NAME["adam-blobs"]


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_the_tuning_and_held_out_spans_are_declared_apart() -> None:
    assert set(spans.SPANS["tuning"]).isdisjoint(spans.SPANS["heldout"])
    assert (curves.SEARCH_MIN, curves.SEARCH_MAX) in spans.SPANS["tuning"]


def test_a_range_test_over_another_span_rises_over_that_span(tmp_path: Path) -> None:
    store = curves.Store(TASK, 0, tmp_path)
    wide = store.range_test(90, (1e-6, 10.0))
    usual = store.range_test(90)
    assert wide.range_curve[0][0] < usual.range_curve[0][0]
    assert wide != usual


def test_each_span_is_swept_and_scored(tmp_path: Path) -> None:
    chosen = ((1e-5, 3.0), (1e-4, 1.0))
    case = spans.case(TASK.name, 0, chosen, tmp_path)
    score_cases([case])
    assert [r["strategy"] for r in case["results"]] == ["1e-05..3", "0.0001..1"]
    for result in case["results"]:
        assert result["rate"] is not None
        assert result["regret"] is not None
