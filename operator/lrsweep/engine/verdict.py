"""A trial's curve -> one verdict with a one-line reason a person can act on.

The rules follow the practice of tuning learning rates: a loss that explodes means the rate
was too high (diverged); one that swings up and down is overshooting (unstable); one that
falls at an unchanging pace has not found its floor (too slow: try 2x); training loss falling
while validation loss rises is overfitting; a flat curve is a plateau; a curve that drops and
levels off is converging.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrsweep.api import Verdict

# A loss this many times its first value means the run blew up.
BLOWUP_FACTOR = 4.0
# Rises smaller than this (relative) are evaluation noise, not overshooting.
NOISE = 0.03
# Share of evaluations that may rise significantly before a curve counts as unstable.
UNSTABLE_SHARE = 0.3
# Validation loss this far above its best, with training loss still falling: overfitting.
OVERFIT_RISE = 0.05
# Less than this relative drop over the whole curve is a plateau.
PLATEAU_DROP = 0.02
# A curve still falling at more than this share of its early pace has not levelled off.
STILL_FALLING = 0.5
MIN_POINTS = 3


@dataclass(frozen=True)
class Point:
    """One evaluation of a trial: its step and the metrics reported there."""

    step: int
    metrics: Mapping[str, float]

    @property
    def train_loss(self) -> float | None:
        return self.metrics.get("train_loss")

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def judge(curve: Sequence[Point], *, diverged: bool = False, reason: str = "") -> Judgement:
    """Judge a curve (evaluation points in step order).

    `diverged` is the trainer's own flag (it stops itself on NaN or a blow-up); `reason` is its
    explanation, kept when it gives one.
    """
    if diverged:
        return Judgement(Verdict.DIVERGED, reason or "the trainer stopped: loss diverged")
    for p in curve:
        for name, value in (("training", p.train_loss), ("validation", p.val_loss)):
            if value is not None and not math.isfinite(value):
                return Judgement(
                    Verdict.DIVERGED,
                    f"{name} loss became {value} at step {p.step}: the rate is too high",
                )
    # Judge the validation curve where there is one (that is what the sweep compares).
    main = [(p.step, p.val_loss if p.val_loss is not None else p.train_loss) for p in curve]
    series = [(s, v) for s, v in main if v is not None]
    if len(series) < MIN_POINTS:
        return Judgement(Verdict.UNKNOWN, f"{len(series)} evaluation(s) so far; need {MIN_POINTS}")
    steps = [s for s, _ in series]
    values = [v for _, v in series]
    first, last = values[0], values[-1]
    peak = max(values)
    if first > 0 and peak > BLOWUP_FACTOR * first:
        at = steps[values.index(peak)]
        return Judgement(
            Verdict.DIVERGED,
            f"loss grew to {peak / first:.1f}x its first value by step {at}: the rate is too high",
        )

    # Overshooting shows as a loss that rises and falls again, repeatedly; a loss that
    # rises and keeps rising is judged below (overfitting) or above (blow-up).
    moves = [(b - a) / abs(a) for a, b in itertools.pairwise(values) if a != 0]
    signs = [1 if m > NOISE else -1 for m in moves if abs(m) > NOISE]
    peaks = sum(1 for a, b in itertools.pairwise(signs) if a == 1 and b == -1)
    big_rises = [m for m in moves if m > NOISE]
    if peaks >= 2 and len(big_rises) >= math.ceil(UNSTABLE_SHARE * len(moves)):
        return Judgement(
            Verdict.UNSTABLE,
            f"loss rose in {len(big_rises)} of {len(moves)} evaluations (up to "
            f"+{_pct(max(big_rises))}): overshooting, the rate is too high to settle",
        )

    overfit = _overfitting(curve)
    if overfit is not None:
        return overfit

    drop = (first - last) / abs(first) if first != 0 else 0.0
    if drop < PLATEAU_DROP and steps[0] > 0:
        # No evaluation before training: a flat curve may have settled before the first.
        return Judgement(
            Verdict.CONVERGING,
            f"loss flat at {last:.4g} since step {steps[0]}: it settled before the first "
            "evaluation (report one at step 0 to tell this from a stuck run)",
        )
    if drop < PLATEAU_DROP:
        return Judgement(
            Verdict.PLATEAU,
            f"loss flat: it moved {_pct(-drop) if drop < 0 else _pct(drop)} over "
            f"{steps[-1] - steps[0]} steps; the rate is too low or training is stuck",
        )
    # Compare the pace of the first and last thirds on a log scale, where a loss still
    # shrinking by the same factor per step (not yet near its floor) looks like a line.
    third = max(1, (len(values) - 1) // 3)
    scale = math.log if all(v > 0 for v in values) else (lambda v: v)
    early = (scale(values[0]) - scale(values[third])) / (steps[third] - steps[0])
    late = (scale(values[-1 - third]) - scale(values[-1])) / (steps[-1] - steps[-1 - third])
    if early > 0 and late > STILL_FALLING * early:
        return Judgement(
            Verdict.TOO_SLOW,
            f"loss fell {_pct(drop)} and is still falling at {_pct(late / early)} of its early "
            "pace: the rate is too low; try 2x",
        )
    return Judgement(Verdict.CONVERGING, f"loss fell {_pct(drop)} and is levelling off")


def _overfitting(curve: Sequence[Point]) -> Judgement | None:
    pairs = [
        (p.step, p.train_loss, p.val_loss)
        for p in curve
        if p.train_loss is not None and p.val_loss is not None
    ]
    if len(pairs) < MIN_POINTS:
        return None
    best_index = min(range(len(pairs)), key=lambda i: pairs[i][2])
    best_step, best_train, best_val = pairs[best_index]
    _, last_train, last_val = pairs[-1]
    if best_index == len(pairs) - 1 or best_val <= 0:
        return None
    rise = (last_val - best_val) / best_val
    if rise > OVERFIT_RISE and last_train < best_train:
        return Judgement(
            Verdict.OVERFITTING,
            f"validation loss is up {_pct(rise)} from its best at step {best_step} while "
            "training loss kept falling: overfitting",
        )
    return None
