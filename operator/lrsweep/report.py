"""The sweep's picture: validation curves per trial, and final score against rate."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lrsweep.api import TrialPhase
from lrsweep.engine.strategies import Best
from lrsweep.engine.trials import TrialRecord
from lrsweep.runtime.jsonsafe import as_reported

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis

# Characters per line of the figure's title (it carries the sweep's message, which can be long).
TITLE_WIDTH = 130


def _drawable(value: float) -> bool:
    """Finite, also once read back from a JSON-safe status (which holds an infinity as the
    largest float: drawn, it would stretch the axis to 1e308)."""
    return math.isfinite(as_reported(value))


def plot_report(
    records: Sequence[TrialRecord],
    best: Best | None,
    metric: str,
    full_steps: int,
    path: Path,
    title: str,
) -> None:
    """Write a PNG with two panels: `metric` over steps per trial; score against rate.

    A trial without evaluations (records rebuilt from a status) is drawn through the values
    at its rungs.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    train = [r for r in records if r.mode == "train"]
    fig, (curves, scores) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    rates = [r.learning_rate for r in train] or [1.0]
    norm = colors.LogNorm(vmin=min(rates), vmax=max(rates) * (1.0001))
    cmap = matplotlib.colormaps["viridis"]
    positive = True
    for r in train:
        pts = [(p.step, p.metrics[metric]) for p in r.points if metric in p.metrics]
        # A status read back from a cluster keeps no curves, only each trial's rung values.
        pts = pts or sorted(r.rungs.items())
        pts = [(s, v) for s, v in pts if _drawable(v)]
        if not pts:
            continue
        positive = positive and all(v > 0 for _, v in pts)
        style = "-" if r.phase is TrialPhase.SUCCEEDED else ":"
        width = 2.5 if best is not None and r.id == best.trial else 1.2
        curves.plot(
            [s for s, _ in pts],
            [v for _, v in pts],
            style,
            color=cmap(norm(r.learning_rate)),
            linewidth=width,
            label=f"{r.id} lr={r.learning_rate:.3g}",
        )
    if not curves.lines:
        _note(curves, f"no trial reported {metric!r}")
    curves.set_xlabel("step")
    curves.set_ylabel(metric)
    if positive:
        curves.set_yscale("log")
    curves.set_title("curves (dotted: stopped early, diverged or failed)")
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=curves, label="learning rate")
    _label_as_numbers(bar.ax.yaxis)

    full = [(r.learning_rate, r.rungs[full_steps]) for r in train if full_steps in r.rungs]
    partial = [
        (r.learning_rate, r.rungs[max(r.rungs)])
        for r in train
        if r.rungs and full_steps not in r.rungs
    ]
    full = [(rate, v) for rate, v in full if _drawable(v)]
    partial = [(rate, v) for rate, v in partial if _drawable(v)]
    if full:
        scores.scatter(*zip(*full, strict=True), label=f"{metric} at step {full_steps}")
    if partial:
        scores.scatter(
            *zip(*partial, strict=True),
            facecolors="none",
            edgecolors="gray",
            label="stopped early (last rung)",
        )
    if best is not None and _drawable(best.score):
        scores.scatter(
            [best.learning_rate],
            [best.score],
            marker="*",
            s=300,
            color="crimson",
            zorder=3,
            label=f"winner {best.learning_rate:.3g}",
        )
    scores.set_xscale("log")
    _label_as_numbers(scores.xaxis)
    scores.set_xlabel("learning rate")
    scores.set_ylabel(metric)
    scores.set_title("score against rate")
    if scores.collections:
        scores.legend(loc="best", fontsize="small")
    else:
        _note(scores, f"no trial has a score ({metric!r} at a rung)")
    fig.suptitle(textwrap.fill(title, TITLE_WIDTH))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _note(axes: Axes, text: str) -> None:
    """Say in an empty panel why it is empty."""
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="gray")


def _label_as_numbers(axis: Axis) -> None:
    """Label a log axis's ticks "0.3", not "3x10^-1", where matplotlib labels them at all.

    Over about a decade (a quickstart's rates) it labels minor ticks too, and the scientific
    labels of neighbouring ones touch.
    """
    from matplotlib.ticker import LogFormatterSciNotation

    class Numbers(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}".replace("e-0", "e-") if super().__call__(x, pos) else ""

    axis.set_major_formatter(Numbers())
    axis.set_minor_formatter(Numbers())
