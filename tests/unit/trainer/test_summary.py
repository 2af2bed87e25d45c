"""The summary (docs/contract.md, "Summary").

Covers: every point kept when it fits; a long history downsampled under 4096 bytes while
rung steps and the last point stay exact; even absurd rung lists stay under the limit;
non-finite numbers as strings; a one-line, bounded reason; range-test columns move into
the rangeTest block with the suggestions, which holds only the evaluations that have them (no
nulls for one at step 0); memory-bounded history thinning keeps rungs and
the newest point; an unwritable path is reported, not raised.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lrsweep.engine.rangetest import RangeTestResult
from lrsweep_trainer.summary import (
    SUMMARY_LIMIT,
    EvalPoint,
    History,
    SummaryInput,
    render_summary,
    write_summary,
)


def long_run(steps: int, every: int = 1) -> list[EvalPoint]:
    return [
        EvalPoint(
            s,
            {
                "train_loss": 2.0 / s + 0.123456789,
                "val_loss": 2.1 / s + 0.2,
                "val_accuracy": 1 - 1 / s,
                "custom_metric": s * 1.0001,
            },
        )
        for s in range(every, steps + 1, every)
    ]


def summary(points: list[EvalPoint], **fields: object) -> SummaryInput:
    base: dict[str, object] = {
        "trial": "t003",
        "status": "finished",
        "reason": "reached step 300",
        "step": points[-1].step if points else 0,
        "learning_rate": 0.01,
        "points": points,
    }
    base.update(fields)
    return SummaryInput(**base)  # type: ignore[arg-type]


def test_short_history_is_kept_whole() -> None:
    points = long_run(300, every=25)
    document = json.loads(render_summary(summary(points)))
    assert document["v"] == 1
    assert document["history"]["step"] == list(range(25, 301, 25))
    assert document["history"]["custom_metric"][-1] == 300.03


def test_long_history_fits_and_keeps_rungs_and_the_last_point_exactly() -> None:
    points = long_run(20_000, every=4)
    rungs = [100, 300, 900, 2700, 8100]
    text = render_summary(summary(points, rungs=rungs))
    assert len(text.encode("utf-8")) <= SUMMARY_LIMIT
    history = json.loads(text)["history"]
    for step in [*rungs, 20_000]:
        index = history["step"].index(step)
        assert history["val_loss"][index] == float(f"{2.1 / step + 0.2:.6g}")
    assert history["step"] == sorted(history["step"])
    assert len(history["step"]) > 20  # downsampled, not emptied


def test_absurd_rung_lists_still_fit() -> None:
    points = long_run(5000)
    text = render_summary(summary(points, rungs=range(1, 5001)))
    assert len(text.encode("utf-8")) <= SUMMARY_LIMIT
    assert json.loads(text)["history"]["step"][-1] == 5000


def test_non_finite_numbers_are_strings() -> None:
    points = [EvalPoint(1, {"train_loss": math.nan, "val_loss": math.inf, "other": -math.inf})]
    history = json.loads(render_summary(summary(points)))["history"]
    assert (history["train_loss"], history["val_loss"], history["other"]) == (
        ["NaN"],
        ["Infinity"],
        ["-Infinity"],
    )


def test_reason_is_one_bounded_line() -> None:
    reason = json.loads(render_summary(summary([], reason="line one\nline two " + "x" * 1000)))[
        "reason"
    ]
    assert "\n" not in reason
    assert reason.startswith("line one line two")
    assert len(reason) <= 300


def test_range_test_columns_move_into_the_range_test_block() -> None:
    points = [
        EvalPoint(s, {"train_loss": 2.0, "learning_rate": 10.0**-s, "smoothed_loss": 2.0})
        for s in range(1, 4)
    ]
    result = RangeTestResult(steepest=1e-2, valley=1e-2, divergence=None, minimum=1e-3)
    document = json.loads(render_summary(summary(points, range_test=True, range_result=result)))
    assert set(document["history"]) == {"step", "train_loss"}
    block = document["rangeTest"]
    assert block["learning_rate"] == [0.1, 0.01, 0.001]
    assert block["smoothed_loss"] == [2.0, 2.0, 2.0]
    assert (block["steepest"], block["valley"], block["divergence"]) == (0.01, 0.01, None)


def test_range_test_block_leaves_out_evaluations_without_range_values() -> None:
    before = EvalPoint(0, {"train_loss": 2.5, "val_loss": 2.6})  # logged before the first step
    points = [before] + [
        EvalPoint(s, {"learning_rate": 10.0**-s, "smoothed_loss": 2.0}) for s in range(1, 4)
    ]
    document = json.loads(render_summary(summary(points, range_test=True)))
    assert document["history"]["step"] == [0, 1, 2, 3]
    block = document["rangeTest"]
    assert block["learning_rate"] == [0.1, 0.01, 0.001]
    assert block["smoothed_loss"] == [2.0, 2.0, 2.0]


def test_history_thinning_keeps_rungs_and_the_newest_point() -> None:
    history = History(protected=[7, 501], capacity=100)
    for step in range(1, 1001):
        history.record(step, {"train_loss": 1.0})
    steps = [p.step for p in history.points]
    assert len(steps) <= 100
    assert {7, 501, 1000} <= set(steps)


def test_history_merges_metrics_reported_at_one_step() -> None:
    history = History()
    history.record(5, {"train_loss": 1.0})
    history.record(5, {"val_loss": 2.0})
    assert history.points == [EvalPoint(5, {"train_loss": 1.0, "val_loss": 2.0})]


def test_unwritable_path_is_reported_not_raised(tmp_path: Path) -> None:
    problem = write_summary("{}", str(tmp_path / "missing" / "summary.json"))
    assert problem is not None
    assert "could not write the summary" in problem
