"""The sweep's picture (`lrsweep.plots.plot_report`), and what `lrsweep report` gives it.

Covers: a sweep with scored trials gets a PNG; a sweep where no trial reported the objective
still gets one, saying so in its panels instead of warning about an empty legend (pytest
turns warnings into errors here); a long sweep message is wrapped in the figure's title; a
trial without evaluations (rebuilt from a status) is drawn through its rung values, marked,
so that one stopped at its first rung shows; an infinite score, as a JSON-safe status holds
it (the largest float), is left out of both panels; rates are labelled as numbers whose
labels do not touch, over one decade and over five; scores are on a log axis where all are
positive. A sweep that ran a range test leads with its loss against rate: the readouts it
found as vertical lines at their rates, the first round's rates shaded, the winner on the
rate axis, a loss exploding past divergence cut off, a loss that barely fell said to; from
a status (no curve) the readouts alone, saying why. A winner at the lowest or highest rate
tried has the rates beyond hatched and said to be untried. `lrsweep report` draws the range
test of a cluster's LRSweep from its status and of a local sweep from its summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import yaml

from lrsweep.api import RangeTestStatus, TrialPhase
from lrsweep.cli import main
from lrsweep.engine.strategies import Best
from lrsweep.engine.trials import TrialRecord
from lrsweep.engine.verdict import Point
from lrsweep.plots import (
    CURVES_PANEL,
    NO_CURVE,
    RANGE_PANEL,
    SCORES_PANEL,
    TITLE_WIDTH,
    plot_report,
)
from lrsweep.runtime.local import attempt_files, save_sweep, write_status
from tests.unit.engine.conftest import TEMPLATE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.text import Text


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """The figures `plot_report` drew, kept open to look at once it has saved them."""
    import matplotlib.pyplot as plt

    close = plt.close
    kept: list[Figure] = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for fig in kept:
        close(fig)


def _panel(fig: Figure, label: str) -> Axes:
    (axes,) = [a for a in fig.axes if a.get_label() == label]
    return axes


def _trial(trial: str, rate: float, metric: str) -> TrialRecord:
    points = tuple(Point(step, {metric: 1.0 / step}) for step in (10, 20, 30))
    rungs = {30: 1.0 / 30} if metric == "val_loss" else {}
    return TrialRecord(trial, rate, 0, phase=TrialPhase.SUCCEEDED, points=points, rungs=rungs)


def _scored(trial: str, rate: float, score: float, rnd: int = 0) -> TrialRecord:
    return TrialRecord(trial, rate, 0, round=rnd, phase=TrialPhase.SUCCEEDED, rungs={30: score})


def test_scored_trials_give_a_png(tmp_path: Path) -> None:
    records = [_trial("t000", 0.01, "val_loss"), _trial("t001", 0.1, "val_loss")]
    path = tmp_path / "report.png"
    plot_report(records, Best(0.01, 1.0 / 30, "t000"), "val_loss", 30, path, "sweep")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_trials_without_the_objective_still_give_a_png_without_warnings(tmp_path: Path) -> None:
    records = [_trial("t000", 0.01, "train_loss"), _trial("t001", 0.1, "train_loss")]
    path = tmp_path / "report.png"
    plot_report(records, None, "val_loss", 30, path, "sweep")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_long_sweep_message_is_wrapped_in_the_title(tmp_path: Path, drawn: list[Figure]) -> None:
    title = "LRSweep s: " + "word " * 60
    plot_report([_trial("t000", 0.01, "val_loss")], None, "val_loss", 30, tmp_path / "r.png", title)
    lines = drawn[0].get_suptitle().splitlines()
    assert len(lines) > 1
    assert all(len(line) <= TITLE_WIDTH for line in lines)
    assert " ".join(lines) == title.strip()


def test_a_trial_without_evaluations_is_drawn_through_its_rung_values(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    rebuilt = TrialRecord("t000", 0.01, 0, phase=TrialPhase.STOPPED, rungs={30: 0.5, 10: 0.9})
    plot_report([rebuilt], None, "val_loss", 90, tmp_path / "r.png", "sweep")
    (line,) = _panel(drawn[0], CURVES_PANEL).get_lines()
    assert np.asarray(line.get_xydata()).tolist() == [[10, 0.9], [30, 0.5]]


def test_a_trial_from_a_status_stopped_at_its_first_rung_is_drawn_as_a_marker(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    # One point: a line through it alone draws nothing.
    stopped = TrialRecord("t001", 0.1, 0, phase=TrialPhase.STOPPED, rungs={10: 2.5})
    plot_report([stopped], None, "val_loss", 90, tmp_path / "r.png", "sweep")
    (line,) = _panel(drawn[0], CURVES_PANEL).get_lines()
    assert np.asarray(line.get_xydata()).tolist() == [[10, 2.5]]
    assert line.get_marker() == "o"


def test_an_infinite_score_read_back_from_a_status_is_left_out_of_both_panels(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    converged = TrialRecord("t000", 0.01, 0, phase=TrialPhase.SUCCEEDED, rungs={30: 0.5})
    diverged = TrialRecord(
        "t001", 1.0, 0, phase=TrialPhase.DIVERGED, rungs={10: 0.9, 30: sys.float_info.max}
    )
    plot_report([converged, diverged], None, "val_loss", 30, tmp_path / "r.png", "sweep")
    curves, scores = _panel(drawn[0], CURVES_PANEL), _panel(drawn[0], SCORES_PANEL)
    assert [np.asarray(line.get_ydata()).max() for line in curves.get_lines()] == [0.5, 0.9]
    assert scores.get_ylim()[1] < 10.0  # far from the largest float


def test_positive_scores_are_on_a_log_axis(tmp_path: Path, drawn: list[Figure]) -> None:
    # Stopped trials' losses near the start would squash the finalists on a linear axis.
    records = [_scored("t000", 0.01, 2.3), _scored("t001", 0.1, 0.11), _scored("t002", 1, 0.1)]
    plot_report(records, None, "val_loss", 30, tmp_path / "r.png", "sweep")
    assert _panel(drawn[0], SCORES_PANEL).get_yscale() == "log"


def test_scores_below_zero_stay_on_a_linear_axis(tmp_path: Path, drawn: list[Figure]) -> None:
    # A log axis would leave them out (a log-likelihood objective, say).
    records = [_scored("t000", 0.01, -2.0), _scored("t001", 0.1, 0.5)]
    plot_report(records, None, "val_loss", 30, tmp_path / "r.png", "sweep")
    assert _panel(drawn[0], SCORES_PANEL).get_yscale() == "linear"


def _tick_labels(axis: Axis) -> list[Text]:
    """The tick labels matplotlib drew on `axis`: it leaves some ticks unlabelled, and keeps
    labels of ticks outside the view."""
    from matplotlib.axis import XAxis

    low, high = sorted(axis.get_view_interval())
    along = 0 if isinstance(axis, XAxis) else 1
    return [
        t
        for t in axis.get_ticklabels(which="both")
        if t.get_visible() and t.get_text() and low <= t.get_position()[along] <= high
    ]


@pytest.mark.parametrize(
    "rates",
    [[0.0432, 0.0768, 0.1367, 0.2431, 0.4323], [1e-5, 1e-3, 0.1, 1.0]],
    ids=["one decade", "five decades"],
)
def test_rates_are_labelled_as_numbers_that_do_not_touch(
    rates: list[float], tmp_path: Path, drawn: list[Figure]
) -> None:
    records = [_scored(f"t{i:03d}", rate, 1.0 + i) for i, rate in enumerate(rates)]
    plot_report(records, None, "val_loss", 30, tmp_path / "r.png", "sweep")
    fig = drawn[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas has one
    scores, bar = _panel(fig, SCORES_PANEL), fig.axes[-1]
    for axis in (scores.xaxis, bar.yaxis):
        labels = _tick_labels(axis)
        assert len(labels) >= 3
        for label in labels:
            float(label.get_text())  # "0.3" or "1e-5", not "3x10^-1" in mathtext
        boxes = [label.get_window_extent(renderer) for label in labels]
        spans = sorted((b.x0, b.x1) if axis is scores.xaxis else (b.y0, b.y1) for b in boxes)
        gaps = [start - end for (_, end), (start, _) in pairwise(spans)]
        assert min(gaps) > 2, f"labels {[t.get_text() for t in labels]} touch"


# --- the range test -------------------------------------------------------------------------

CURVE = ((1e-4, 2.3), (1e-3, 2.3), (1e-2, 2.0), (1e-1, 1.2), (1.0, 1.0), (10.0, 3.0))
READOUTS = RangeTestStatus(
    steepest=0.02, valley=0.05, minimum=1.0, divergence=8.0, ceiling=5.0, descent=0.56
)


def _range_test(curve: tuple[tuple[float, float], ...] = CURVE) -> TrialRecord:
    return TrialRecord(
        "t000", 0.0, 0, mode="range-test", phase=TrialPhase.SUCCEEDED, range_curve=curve
    )


def _readout_lines(axes: Axes) -> dict[str, float]:
    """The vertical lines of `axes` by the first word of their label, at their rate."""
    lines = {str(line.get_label()): np.asarray(line.get_xdata()).tolist() for line in axes.lines}
    return {
        label.split()[0]: xs[0] for label, xs in lines.items() if len(xs) == 2 and xs[0] == xs[1]
    }


def test_a_sweep_without_a_range_test_has_no_range_test_panel(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    plot_report([_scored("t000", 0.01, 0.5)], None, "val_loss", 30, tmp_path / "r.png", "s")
    assert RANGE_PANEL not in [a.get_label() for a in drawn[0].axes]


def test_the_range_test_is_drawn_as_smoothed_loss_against_rate_on_a_log_axis(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    plot_report([_range_test()], None, "val_loss", 30, tmp_path / "r.png", "s", READOUTS)
    panel = _panel(drawn[0], RANGE_PANEL)
    (loss,) = [line for line in panel.get_lines() if line.get_label() == "smoothed loss"]
    assert [tuple(xy) for xy in np.asarray(loss.get_xydata()).tolist()] == list(CURVE)
    assert panel.get_xscale() == "log"


def test_the_readouts_are_vertical_lines_at_their_rates(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    plot_report([_range_test()], None, "val_loss", 30, tmp_path / "r.png", "s", READOUTS)
    assert _readout_lines(_panel(drawn[0], RANGE_PANEL)) == {
        "steepest": 0.02,
        "valley": 0.05,
        "divergence": 8.0,
        "ceiling": 5.0,
    }


def test_readouts_the_range_test_did_not_find_are_not_drawn(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    never_diverged = READOUTS.model_copy(update={"divergence": None, "ceiling": None})
    plot_report([_range_test()], None, "val_loss", 30, tmp_path / "r.png", "s", never_diverged)
    assert set(_readout_lines(_panel(drawn[0], RANGE_PANEL))) == {"steepest", "valley"}


def test_a_range_test_from_a_status_draws_its_readouts_without_a_curve_and_says_so(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    # A cluster's status keeps the readouts, not the curve.
    plot_report([_range_test(curve=())], None, "val_loss", 30, tmp_path / "r.png", "s", READOUTS)
    panel = _panel(drawn[0], RANGE_PANEL)
    assert set(_readout_lines(panel)) == {"steepest", "valley", "divergence", "ceiling"}
    assert "smoothed loss" not in [line.get_label() for line in panel.get_lines()]
    assert [t.get_text() for t in panel.texts] == [NO_CURVE]


def test_the_first_rounds_rates_are_shaded_in_the_range_test(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    records = [
        _range_test(),
        _scored("t001", 0.1, 0.5),
        _scored("t002", 0.01, 0.4),
        _scored("t003", 0.03, 0.3),
        _scored("t004", 0.5, 0.2, rnd=1),  # refined later: not the first round's
    ]
    plot_report(records, None, "val_loss", 30, tmp_path / "r.png", "s", READOUTS)
    (window,) = _panel(drawn[0], RANGE_PANEL).patches
    corners = window.get_path().vertices @ np.diag([1.0, 0.0])  # x of each corner
    assert sorted(set(window.get_patch_transform().transform(corners)[:, 0].tolist())) == [
        pytest.approx(0.01),
        pytest.approx(0.1),
    ]


def test_the_winner_is_marked_on_the_range_tests_rate_axis(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    records = [_range_test(), _scored("t001", 0.01, 0.4), _scored("t002", 0.1, 0.5)]
    best = Best(0.01, 0.4, "t001")
    plot_report(records, best, "val_loss", 30, tmp_path / "r.png", "s", READOUTS)
    (star,) = [
        line
        for line in _panel(drawn[0], RANGE_PANEL).get_lines()
        if str(line.get_label()).startswith("winner")
    ]
    assert star.get_marker() == "*"
    assert np.asarray(star.get_xdata()).tolist() == [0.01]


def test_a_range_test_loss_exploding_past_divergence_is_cut_off(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    # Drawn whole, 1e6 would flatten the descent from 2.3 to 1.0 into the axis.
    exploding = (*CURVE, (20.0, 1e6))
    plot_report([_range_test(exploding)], None, "val_loss", 30, tmp_path / "r.png", "s")
    low, high = _panel(drawn[0], RANGE_PANEL).get_ylim()
    assert low < 1.0
    assert 3.0 <= high < 10.0


def test_a_range_test_whose_loss_barely_fell_says_its_readouts_mean_little(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    flat = READOUTS.model_copy(update={"descent": 0.01})
    plot_report([_range_test()], None, "val_loss", 30, tmp_path / "r.png", "s", flat)
    (note,) = _panel(drawn[0], RANGE_PANEL).texts
    assert "fell 1.0%" in note.get_text()


# --- the edge of the rates tried ------------------------------------------------------------


def _hatched(axes: Axes) -> list[float]:
    """The rates the hatched span of `axes` covers, ends first and last."""
    (span,) = [p for p in axes.patches if p.get_hatch()]
    corners = span.get_patch_transform().transform(span.get_path().vertices)
    return sorted(set(corners[:, 0].tolist()))


@pytest.mark.parametrize(
    ("winner", "side", "beyond"), [(0.01, "lowest", "below"), (1.0, "highest", "above")]
)
def test_a_winner_at_an_edge_of_the_rates_tried_has_the_rates_beyond_hatched_and_says_so(
    winner: float, side: str, beyond: str, tmp_path: Path, drawn: list[Figure]
) -> None:
    records = [_scored("t000", 0.01, 0.3), _scored("t001", 0.1, 0.4), _scored("t002", 1.0, 0.5)]
    best = Best(winner, 0.2, "t00x")
    plot_report(records, best, "val_loss", 30, tmp_path / "r.png", "sweep")
    scores = _panel(drawn[0], SCORES_PANEL)
    assert f"winner at the {side} rate tried: better ones may lie {beyond}" in scores.get_title()
    span = _hatched(scores)
    assert span[0 if side == "highest" else -1] == pytest.approx(winner)
    assert (span[-1] > winner) if side == "highest" else (span[0] < winner)


def test_a_winner_inside_the_rates_tried_marks_no_edge(tmp_path: Path, drawn: list[Figure]) -> None:
    records = [_scored("t000", 0.01, 0.3), _scored("t001", 0.1, 0.2), _scored("t002", 1.0, 0.5)]
    plot_report(records, Best(0.1, 0.2, "t001"), "val_loss", 30, tmp_path / "r.png", "sweep")
    scores = _panel(drawn[0], SCORES_PANEL)
    assert scores.get_title() == "score against rate"
    assert not [p for p in scores.patches if p.get_hatch()]


# --- `lrsweep report` -----------------------------------------------------------------------


def _sweep_doc() -> dict[str, Any]:
    return {
        "apiVersion": "lrsweep.dev/v1alpha1",
        "kind": "LRSweep",
        "metadata": {"name": "demo"},
        "spec": {
            "search": {"strategy": "adaptive", "min": 1e-4, "max": 10.0},
            "budget": {"steps": 30, "evalEvery": 10, "minSteps": 10},
            "trial": {"template": TEMPLATE},
        },
    }


def _status_doc() -> dict[str, Any]:
    return {
        "phase": "Succeeded",
        "bestLearningRate": 0.01,
        "bestTrial": "t001",
        "bestScore": 0.4,
        "rangeTest": READOUTS.model_dump(),
        "trials": {
            "t000": {
                "learningRate": 0.0,
                "mode": "range-test",
                "phase": "Succeeded",
                "attempts": 1,
                "queued": False,
            },
            "t001": {"learningRate": 0.01, "phase": "Succeeded", "rungs": {"30": 0.4}},
        },
    }


def test_lrsweep_report_of_a_cluster_sweep_draws_the_readouts_of_its_status(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    stored = tmp_path / "lrs.yaml"
    stored.write_text(yaml.safe_dump({**_sweep_doc(), "status": _status_doc()}))
    assert main(["report", str(stored), "--out", str(tmp_path / "r.png")]) == 0
    panel = _panel(drawn[0], RANGE_PANEL)
    assert _readout_lines(panel)["valley"] == 0.05
    assert [t.get_text() for t in panel.texts] == [NO_CURVE]


def test_lrsweep_report_of_a_local_sweep_draws_the_range_tests_curve_from_its_summary(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    from lrsweep.api import LRSweepStatus, parse_sweep

    (tmp_path / "trials").mkdir()
    save_sweep(tmp_path, parse_sweep(_sweep_doc()))
    write_status(tmp_path, LRSweepStatus.model_validate(_status_doc()))
    lrs, losses = zip(*CURVE, strict=True)
    summary = {"status": "finished", "rangeTest": {"learning_rate": lrs, "smoothed_loss": losses}}
    path = attempt_files(tmp_path, "t000", 1).with_suffix(".summary.json")
    path.write_text(json.dumps(summary))
    assert main(["report", str(tmp_path)]) == 0
    panel = _panel(drawn[0], RANGE_PANEL)
    assert "smoothed loss" in [line.get_label() for line in panel.get_lines()]
    assert _readout_lines(panel)["valley"] == 0.05
