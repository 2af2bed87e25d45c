"""The sweep's picture (`lrsweep.report.plot_report`).

Covers: a sweep with scored trials gets a PNG; a sweep where no trial reported the objective
still gets one, saying so in its panels instead of warning about an empty legend (pytest
turns warnings into errors here); a long sweep message is wrapped in the figure's title; a
trial without evaluations (rebuilt from a status) is drawn through its rung values; an
infinite score, as a JSON-safe status holds it (the largest float), is left out of both panels;
rates are labelled as numbers whose labels do not touch, over one decade and over five.
"""

from __future__ import annotations

import sys
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from lrsweep.api import TrialPhase
from lrsweep.engine.strategies import Best
from lrsweep.engine.trials import TrialRecord
from lrsweep.engine.verdict import Point
from lrsweep.report import TITLE_WIDTH, plot_report

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.text import Text


def _trial(trial: str, rate: float, metric: str) -> TrialRecord:
    points = tuple(Point(step, {metric: 1.0 / step}) for step in (10, 20, 30))
    rungs = {30: 1.0 / 30} if metric == "val_loss" else {}
    return TrialRecord(trial, rate, 0, phase=TrialPhase.SUCCEEDED, points=points, rungs=rungs)


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


def test_a_long_sweep_message_is_wrapped_in_the_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    closed: list[Figure] = []
    monkeypatch.setattr(plt, "close", closed.append)
    title = "LRSweep s: " + "word " * 60
    plot_report([_trial("t000", 0.01, "val_loss")], None, "val_loss", 30, tmp_path / "r.png", title)
    lines = closed[0].get_suptitle().splitlines()
    assert len(lines) > 1
    assert all(len(line) <= TITLE_WIDTH for line in lines)
    assert " ".join(lines) == title.strip()


def test_a_trial_without_evaluations_is_drawn_through_its_rung_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    closed: list[Figure] = []
    monkeypatch.setattr(plt, "close", closed.append)
    rebuilt = TrialRecord("t000", 0.01, 0, phase=TrialPhase.STOPPED, rungs={30: 0.5, 10: 0.9})
    plot_report([rebuilt], None, "val_loss", 90, tmp_path / "r.png", "sweep")
    (line,) = closed[0].axes[0].get_lines()
    assert np.asarray(line.get_xydata()).tolist() == [[10, 0.9], [30, 0.5]]


def test_an_infinite_score_read_back_from_a_status_is_left_out_of_both_panels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    closed: list[Figure] = []
    monkeypatch.setattr(plt, "close", closed.append)
    converged = TrialRecord("t000", 0.01, 0, phase=TrialPhase.SUCCEEDED, rungs={30: 0.5})
    diverged = TrialRecord(
        "t001", 1.0, 0, phase=TrialPhase.DIVERGED, rungs={10: 0.9, 30: sys.float_info.max}
    )
    plot_report([converged, diverged], None, "val_loss", 30, tmp_path / "r.png", "sweep")
    curves, scores = closed[0].axes[:2]
    assert [np.asarray(line.get_ydata()).max() for line in curves.get_lines()] == [0.5, 0.9]
    assert scores.get_ylim()[1] < 1.0


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
    rates: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    closed: list[Figure] = []
    monkeypatch.setattr(plt, "close", closed.append)
    records = [
        TrialRecord(f"t{i:03d}", rate, 0, phase=TrialPhase.SUCCEEDED, rungs={30: 1.0 + i})
        for i, rate in enumerate(rates)
    ]
    plot_report(records, None, "val_loss", 30, tmp_path / "r.png", "sweep")
    fig = closed[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas has one
    scores, bar = fig.axes[1], fig.axes[2]
    for axis in (scores.xaxis, bar.yaxis):
        labels = _tick_labels(axis)
        assert len(labels) >= 3
        for label in labels:
            float(label.get_text())  # "0.3" or "1e-5", not "3x10^-1" in mathtext
        boxes = [label.get_window_extent(renderer) for label in labels]
        spans = sorted((b.x0, b.x1) if axis is scores.xaxis else (b.y0, b.y1) for b in boxes)
        gaps = [start - end for (_, end), (start, _) in pairwise(spans)]
        assert min(gaps) > 2, f"labels {[t.get_text() for t in labels]} touch"
