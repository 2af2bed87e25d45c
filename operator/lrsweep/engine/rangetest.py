"""Reading a learning-rate range test: which rates does its loss curve suggest?

A range test trains once while the rate grows exponentially, recording the training loss
at every step. The loss first barely moves (rate too small), then falls (useful rates), then
explodes (too large). This module turns that curve into suggestions:

- `steepest`: the rate where the loss falls fastest per decade of rate,
- `valley`: a rate two thirds of the way down the longest descent (the idea of fastai's
  "valley" suggestion, implemented here from that description),
- `divergence`: the first rate where the loss exceeds `factor` x the lowest loss so far,
- `minimum`: the rate with the lowest loss before divergence,
- `descent`: how far the loss fell at all (its drop to the minimum, as a share of where it
  started). A curve that barely descends (a slow learner, a network that cannot train in so
  few steps) says nothing about where good rates lie: below MIN_DESCENT the other readouts
  are batch noise, and no `ceiling` is read from it.

Everything here is plain Python on floats: the trainer (torch) and the operator (no torch)
both use it, so they agree on what a curve means.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_BETA = 0.98
DEFAULT_DIVERGENCE_FACTOR = 4.0
# Share of the curve ignored at its start when looking for the steepest slope: the first
# smoothed values rest on few batches and are noisy.
START_MARGIN = 0.1
# Slopes are measured across this share of the curve's points on either side, which keeps
# batch noise from passing for a steep descent.
SLOPE_WINDOW = 0.05
# Rises smaller than this share of the curve's height are wiggles, not the end of a descent.
VALLEY_TOLERANCE = 0.02
# How far down the descent the valley suggestion sits (share of the loss drop).
VALLEY_DEPTH = 2.0 / 3.0
# A range test whose smoothed loss fell by less than this share of its start said nothing.
# On the search benchmark's tasks informative curves fell by 24-52%, uninformative ones (a
# dying ReLU network, flat for 90 steps at every rate) by at most 1.2%.
MIN_DESCENT = 0.05


class LossSmoother:
    """Exponential moving average of losses with bias correction, fed one loss at a time.

    The correction divides by 1 - beta^n, so early values are not pulled towards zero.
    """

    def __init__(self, beta: float = DEFAULT_BETA) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta = beta
        self._average = 0.0
        self._count = 0

    def add(self, loss: float) -> float:
        """Take the next loss; return the smoothed loss up to and including it."""
        self._count += 1
        self._average = self.beta * self._average + (1.0 - self.beta) * loss
        return self._average / (1.0 - self.beta**self._count)


def smooth(losses: Sequence[float], beta: float = DEFAULT_BETA) -> list[float]:
    """The bias-corrected exponential moving average of `losses`, one value per loss."""
    smoother = LossSmoother(beta)
    return [smoother.add(loss) for loss in losses]


def is_divergent(loss: float, reference: float, factor: float) -> bool:
    """True when `loss` is not finite, or exceeds `factor` x a positive `reference`.

    A ratio means nothing against a reference of zero or below (losses that can go
    negative, such as log-likelihoods): only non-finite losses count then.
    """
    return not math.isfinite(loss) or (reference > 0.0 and loss > factor * reference)


@dataclass(frozen=True)
class RangeTestResult:
    """The suggestions read from one range-test curve (all rates lie within the tested range)."""

    steepest: float
    valley: float
    divergence: float | None  # None: the loss never blew up within the range
    minimum: float
    # First rate past the minimum where the loss is back above where it started: training
    # there makes the model worse than no training. None: it never climbed back, or never
    # descended enough (MIN_DESCENT) for a climb back to mean anything.
    ceiling: float | None = None
    # The loss's drop from its start to its minimum, relative to the start (None: unknown,
    # as in statuses written before it was recorded).
    descent: float | None = None

    @property
    def informative(self) -> bool:
        """The curve descended enough for its readouts to mean anything."""
        return self.descent is None or self.descent >= MIN_DESCENT


def _check(lrs: Sequence[float], losses: Sequence[float]) -> None:
    if len(lrs) != len(losses):
        raise ValueError(f"{len(lrs)} rates but {len(losses)} losses")
    if not lrs:
        raise ValueError("the curve is empty")
    if any(not (math.isfinite(lr) and lr > 0.0) for lr in lrs):
        raise ValueError("rates must be positive and finite")
    if any(b < a for a, b in itertools.pairwise(lrs)):
        raise ValueError("rates must not decrease along the curve")


def _divergence_index(losses: Sequence[float], factor: float) -> int | None:
    lowest = math.inf
    for i, loss in enumerate(losses):
        if i > 0 and is_divergent(loss, lowest, factor):
            return i
        if not math.isfinite(loss):
            return i
        lowest = min(lowest, loss)
    return None


def _usable(losses: Sequence[float], factor: float) -> int:
    """How many leading points come before the blow-up."""
    index = _divergence_index(losses, factor)
    return len(losses) if index is None else index


def divergence_lr(
    lrs: Sequence[float], losses: Sequence[float], factor: float = DEFAULT_DIVERGENCE_FACTOR
) -> float | None:
    """The first rate whose loss is not finite or exceeds `factor` x the lowest loss before it."""
    _check(lrs, losses)
    index = _divergence_index(losses, factor)
    return None if index is None else lrs[index]


def _argmin(values: Sequence[float]) -> int:
    return min(range(len(values)), key=lambda i: values[i])


def steepest_slope(
    lrs: Sequence[float], losses: Sequence[float], factor: float = DEFAULT_DIVERGENCE_FACTOR
) -> float:
    """The rate where d loss / d log(rate) is most negative on the (smoothed) curve.

    Only the part before divergence counts, less its first START_MARGIN. The slope at a point
    is taken between the points SLOPE_WINDOW of the curve before and after it.
    """
    _check(lrs, losses)
    n = _usable(losses, factor)
    if n < 3:
        return lrs[_argmin(losses[:n])] if n else lrs[0]
    x = [math.log(lr) for lr in lrs[:n]]
    half = max(1, round(n * SLOPE_WINDOW))
    first, last = max(half, round(n * START_MARGIN)), n - 1 - half
    if first > last:
        half, first, last = 1, 1, n - 2
    best_index, best_slope = None, math.inf
    for i in range(first, last + 1):
        run = x[i + half] - x[i - half]
        if run <= 0.0:
            continue  # equal rates: no slope to speak of
        slope = (losses[i + half] - losses[i - half]) / run
        if slope < best_slope:
            best_index, best_slope = i, slope
    if best_index is None:
        return lrs[_argmin(losses[:n])]
    return lrs[best_index]


def _longest_descent(losses: Sequence[float]) -> tuple[int, int]:
    """(start, bottom) of the longest stretch along which the curve keeps going down.

    A point continues the stretch while it stays within a small tolerance of the lowest loss
    since the stretch began; a rise beyond that ends it and a new stretch starts there.
    """
    height = max(losses) - min(losses)
    tolerance = VALLEY_TOLERANCE * height
    best = (0, 0)
    start = bottom = 0
    for k in range(1, len(losses) + 1):
        if k < len(losses) and losses[k] <= losses[bottom] + tolerance:
            if losses[k] < losses[bottom]:
                bottom = k
            continue
        if bottom - start > best[1] - best[0]:
            best = (start, bottom)
        start = bottom = k
    return best


def valley(
    lrs: Sequence[float], losses: Sequence[float], factor: float = DEFAULT_DIVERGENCE_FACTOR
) -> float:
    """A rate two thirds of the way down (in loss) the longest descent before divergence."""
    _check(lrs, losses)
    n = _usable(losses, factor)
    if n == 0:
        return lrs[0]
    curve = losses[:n]
    start, bottom = _longest_descent(curve)
    target = curve[start] - VALLEY_DEPTH * (curve[start] - curve[bottom])
    index = next(k for k in range(start, bottom + 1) if curve[k] <= target)
    return lrs[index]


def analyse(
    lrs: Sequence[float], losses: Sequence[float], factor: float = DEFAULT_DIVERGENCE_FACTOR
) -> RangeTestResult:
    """All suggestions of a curve: `lrs` in step order, `losses` the smoothed losses there."""
    _check(lrs, losses)
    n = _usable(losses, factor)
    drop = descent(losses, factor)
    return RangeTestResult(
        steepest=steepest_slope(lrs, losses, factor),
        valley=valley(lrs, losses, factor),
        divergence=divergence_lr(lrs, losses, factor),
        minimum=lrs[_argmin(losses[:n])] if n else lrs[0],
        ceiling=ceiling_lr(lrs, losses) if drop >= MIN_DESCENT else None,
        descent=drop,
    )


def descent(losses: Sequence[float], factor: float = DEFAULT_DIVERGENCE_FACTOR) -> float:
    """The drop from the first loss to the lowest before divergence, as a share of the first.

    0 when the loss never went below its start (or there is no positive start to compare with).
    """
    n = _usable(losses, factor)
    if n == 0 or not (math.isfinite(losses[0]) and losses[0] > 0.0):
        return 0.0
    return round(max(0.0, (losses[0] - min(losses[:n])) / losses[0]), 4)


def ceiling_lr(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The first rate after the lowest loss where the loss exceeds its starting value.

    Losses that saturate when a network dies (cross-entropy stuck near log(classes)) never
    reach a multiple of the minimum, but they do climb back above the start.
    """
    _check(lrs, losses)
    finite = [(i, v) for i, v in enumerate(losses) if math.isfinite(v)]
    if not finite:
        return lrs[0]
    start = finite[0][1]
    bottom = min(finite, key=lambda iv: iv[1])[0]
    for i in range(bottom + 1, len(losses)):
        if not math.isfinite(losses[i]) or losses[i] > start:
            return lrs[i]
    return None
