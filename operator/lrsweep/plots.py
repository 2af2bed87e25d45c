"""The sweep's picture: the range test's loss against rate, validation curves per trial, and
final score against rate."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lrsweep.api import RangeTestStatus, TrialPhase
from lrsweep.engine.rangetest import DEFAULT_DIVERGENCE_FACTOR, MIN_DESCENT
from lrsweep.engine.strategies import Best
from lrsweep.engine.trials import TrialRecord
from lrsweep.runtime.jsonsafe import as_reported

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

# Characters per line of the figure's title (it carries the sweep's message, which can be long).
TITLE_WIDTH = 130
# Each panel's label (`Axes.get_label()`), left to right; the range test's only where the
# sweep ran one.
RANGE_PANEL = "range test"
CURVES_PANEL = "curves"
SCORES_PANEL = "scores"
# The range test's readouts drawn as vertical lines: field, colour, line style.
READOUTS = (
    ("steepest", "tab:orange", "--"),
    ("valley", "tab:green", "-"),
    ("divergence", "tab:red", "-."),
    ("ceiling", "tab:purple", ":"),
)
WINNER = "crimson"
# Where better rates may lie when the winner is at an edge of those tried.
SIDE = {"lowest": "below", "highest": "above"}
# Said in the range-test panel of a sweep read back from a cluster.
NO_CURVE = "no curve: the status keeps only the readouts"


def _drawable(value: float) -> bool:
    """Finite, also once read back from a JSON-safe status (which holds an infinity as the
    largest float: drawn, it would stretch the axis to 1e308)."""
    return math.isfinite(as_reported(value))


def _on_log_axis(value: float) -> bool:
    return _drawable(value) and value > 0


def plot_report(
    records: Sequence[TrialRecord],
    best: Best | None,
    metric: str,
    full_steps: int,
    path: Path,
    title: str,
    range_test: RangeTestStatus | None = None,
) -> None:
    """Write a PNG with `metric` over steps per trial and score against rate, after the range
    test's loss against rate with its readouts (`range_test`) where the sweep ran one.

    A trial without evaluations (records rebuilt from a status) is drawn through the values
    at its rungs, and a range test without its curve through its readouts alone.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    train = [r for r in records if r.mode == "train"]
    tests = [r for r in records if r.mode == "range-test"]
    ranged = bool(tests) or range_test is not None
    fig, panels = plt.subplots(
        1, 3 if ranged else 2, figsize=(18 if ranged else 12, 4.8), layout="constrained"
    )
    if ranged:
        _range_panel(panels[0], tests[-1] if tests else None, range_test, train, best)
    _curves_panel(fig, panels[-2], train, best, metric)
    _scores_panel(panels[-1], train, best, metric, full_steps)
    fig.suptitle(textwrap.fill(title, TITLE_WIDTH))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _range_panel(
    axes: Axes,
    test: TrialRecord | None,
    readouts: RangeTestStatus | None,
    train: Sequence[TrialRecord],
    best: Best | None,
) -> None:
    """The range test's smoothed loss against rate, its readouts as vertical lines, the first
    round's candidates shaded, and the winner on the rate axis."""
    from matplotlib.colors import to_rgba

    axes.set_label(RANGE_PANEL)
    axes.set_xscale("log")
    curve = [
        (lr, loss)
        for lr, loss in (test.range_curve if test else ())
        if _on_log_axis(lr) and _drawable(loss)
    ]
    if curve:
        axes.plot(*zip(*curve, strict=True), color="black", linewidth=1.5, label="smoothed loss")
        losses = [loss for _, loss in curve]
        lowest = min(losses)
        top = DEFAULT_DIVERGENCE_FACTOR * lowest
        if lowest > 0 and max(losses) > top:
            # Past divergence the loss explodes, and would squash the descent that matters.
            axes.set_ylim(lowest - 0.05 * (top - lowest), top)
    for field, colour, style in READOUTS:
        rate = getattr(readouts, field, None)
        if rate is not None and _on_log_axis(rate):
            axes.axvline(rate, color=colour, linestyle=style, label=f"{field} {rate:.3g}")
    first = sorted(r.learning_rate for r in train if r.round == 0)
    if first:
        lo, hi = first[0], first[-1]
        axes.axvspan(
            lo,
            hi,
            facecolor=to_rgba("tab:blue", 0.15),
            # A single candidate is a span of no width: its edge draws it.
            edgecolor="tab:blue",
            linewidth=0 if hi > lo else 2,
            label=f"first round {lo:.3g} to {hi:.3g}" if hi > lo else f"first round {lo:.3g}",
        )
    if best is not None and _on_log_axis(best.learning_rate):
        axes.plot(
            [best.learning_rate],
            [0.04],
            "*",
            markersize=16,
            color=WINNER,
            transform=axes.get_xaxis_transform(),  # y: a share of the panel's height
            label=f"winner {best.learning_rate:.3g}",
        )
    notes = []
    if not curve:
        notes.append(NO_CURVE if readouts is not None else "the range test left no curve")
        axes.set_yticks([])  # no loss to read off
    if readouts is not None and readouts.descent is not None and readouts.descent < MIN_DESCENT:
        notes.append(f"its loss fell {readouts.descent:.1%}: too little for readouts to mean much")
    if notes:
        _note(axes, "\n".join(notes), at_top=True)
    if axes.lines or axes.patches:
        axes.legend(loc="best", fontsize="small")
    _label_as_numbers(axes.xaxis)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("smoothed training loss")
    axes.set_title("range test (shaded: the first round's rates)")


def _curves_panel(
    fig: Figure, axes: Axes, train: Sequence[TrialRecord], best: Best | None, metric: str
) -> None:
    """`metric` over steps per trial, coloured by rate."""
    import matplotlib
    from matplotlib import cm, colors

    axes.set_label(CURVES_PANEL)
    rates = [r.learning_rate for r in train] or [1.0]
    norm = colors.LogNorm(vmin=min(rates), vmax=max(rates) * (1.0001))
    cmap = matplotlib.colormaps["viridis"]
    positive = True
    for r in train:
        pts = [(p.step, p.metrics[metric]) for p in r.points if metric in p.metrics]
        # A status read back from a cluster keeps no curves, only each trial's rung values:
        # marked, so that a trial stopped at its first rung (a single point) shows at all.
        marker = "" if pts else "o"
        pts = pts or sorted(r.rungs.items())
        pts = [(s, v) for s, v in pts if _drawable(v)]
        if not pts:
            continue
        positive = positive and all(v > 0 for _, v in pts)
        width = 2.5 if best is not None and r.id == best.trial else 1.2
        axes.plot(
            [s for s, _ in pts],
            [v for _, v in pts],
            marker + ("-" if r.phase is TrialPhase.SUCCEEDED else ":"),
            color=cmap(norm(r.learning_rate)),
            linewidth=width,
            markersize=5,
            label=f"{r.id} lr={r.learning_rate:.3g}",
        )
    if not axes.lines:
        _note(axes, f"no trial reported {metric!r}")
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    if positive:
        axes.set_yscale("log")
        _label_as_numbers(axes.yaxis)
    axes.set_title("curves (dotted: stopped early, diverged or failed)")
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="learning rate")
    _label_as_numbers(bar.ax.yaxis)


def _scores_panel(
    axes: Axes, train: Sequence[TrialRecord], best: Best | None, metric: str, full_steps: int
) -> None:
    """Each trial's score against its rate (a stopped one's at its last rung), the winner
    marked, and the edge of the tried rates where the winner sits on it."""
    axes.set_label(SCORES_PANEL)
    full = [(r.learning_rate, r.rungs[full_steps]) for r in train if full_steps in r.rungs]
    partial = [
        (r.learning_rate, r.rungs[max(r.rungs)])
        for r in train
        if r.rungs and full_steps not in r.rungs
    ]
    full = [(rate, v) for rate, v in full if _drawable(v)]
    partial = [(rate, v) for rate, v in partial if _drawable(v)]
    scores = [v for _, v in full + partial]
    if full:
        axes.scatter(*zip(*full, strict=True), label=f"{metric} at step {full_steps}")
    if partial:
        axes.scatter(
            *zip(*partial, strict=True),
            facecolors="none",
            edgecolors="gray",
            label="stopped early (last rung)",
        )
    title = "score against rate"
    edge = ""
    if best is not None and _drawable(best.score):
        scores.append(best.score)
        axes.scatter(
            [best.learning_rate],
            [best.score],
            marker="*",
            s=300,
            color=WINNER,
            zorder=3,
            label=f"winner {best.learning_rate:.3g}",
        )
        edge = _edge(best.learning_rate, [r.learning_rate for r in train])
        if edge:
            title += f"\nwinner at the {edge} rate tried: better ones may lie {SIDE[edge]}"
    axes.set_xscale("log")
    _label_as_numbers(axes.xaxis)
    if scores and min(scores) > 0:
        # Stopped trials' high losses would otherwise squash the finalists into one row.
        axes.set_yscale("log")
        _label_as_numbers(axes.yaxis)
    if best is not None and edge:
        _shade_untried(axes, best.learning_rate, edge)
    axes.set_xlabel("learning rate")
    axes.set_ylabel(metric)
    axes.set_title(title)
    if axes.collections:
        axes.legend(loc="best", fontsize="small")
    else:
        _note(axes, f"no trial has a score ({metric!r} at a rung)")


def _edge(rate: float, tried: Sequence[float]) -> str:
    """The edge of the rates tried that `rate` sits on, "lowest" or "highest"; "" where they
    bracket it (or it is the only one)."""
    distinct = sorted(set(tried))
    if len(distinct) < 2 or distinct[0] < rate < distinct[-1]:
        return ""
    return "lowest" if rate <= distinct[0] else "highest"


def _shade_untried(axes: Axes, edge_rate: float, edge: str) -> None:
    """Hatch the rates beyond the edge of those tried (on a log rate axis)."""
    lo, hi = axes.get_xlim()
    step = (hi / lo) ** 0.15  # a share of the axis's width
    beyond = edge_rate * step if edge == "highest" else edge_rate / step
    axes.axvspan(
        min(edge_rate, beyond),
        max(edge_rate, beyond),
        facecolor="none",
        edgecolor="gray",
        hatch="//",
        linewidth=0,
        label="not tried",
    )
    axes.axvline(edge_rate, color="gray", linestyle="--", linewidth=1)
    axes.set_xlim(min(lo, beyond), max(hi, beyond))


def _note(axes: Axes, text: str, *, at_top: bool = False) -> None:
    """Say in a panel why it is empty (in its middle), or what it lacks (at its top)."""
    y, va = (0.96, "top") if at_top else (0.5, "center")
    axes.text(0.5, y, text, ha="center", va=va, transform=axes.transAxes, color="gray")


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
