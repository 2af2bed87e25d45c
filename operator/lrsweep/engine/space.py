"""Candidate learning rates on a log scale."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# Rates are rounded to this many significant digits so that the same rate reached by two
# routes (a grid point, a refinement midpoint) compares equal and prints cleanly.
SIGNIFICANT_DIGITS = 4


def tidy(rate: float) -> float:
    """Round a rate to SIGNIFICANT_DIGITS significant digits."""
    return float(f"{rate:.{SIGNIFICANT_DIGITS - 1}e}")


def log_grid(low: float, high: float, count: int) -> list[float]:
    """`count` rates evenly spaced on a log scale from low to high, both ends included."""
    if count == 1:
        return [tidy(math.sqrt(low * high))]
    step = (math.log(high) - math.log(low)) / (count - 1)
    return [tidy(math.exp(math.log(low) + i * step)) for i in range(count)]


def log_uniform(low: float, high: float, count: int, seed: str) -> list[float]:
    """`count` rates drawn log-uniformly from [low, high], reproducible from `seed`."""
    rng = random.Random(seed)
    return [tidy(math.exp(rng.uniform(math.log(low), math.log(high)))) for _ in range(count)]


def beyond_edge(
    best: float, tried: Sequence[float], low: float, high: float, *, walking: bool = False
) -> list[float]:
    """One rate past `best` when it is the lowest or highest rate tried, else none.

    The first step past an edge is half the (log) spacing to its neighbour: the best sits
    on the edge, so the optimum lies past it, most often within that spacing. Once `walking`
    (the best is itself a step past an earlier edge, and won), the step is the whole spacing
    to its neighbour, so the walk goes on at that pace for as long as it keeps winning. A
    lone rate steps a factor of 2 either way. Rates stay within [low, high].
    """
    ordered = sorted(set(tried))
    if len(ordered) == 1:
        proposals = [tidy(best / 2), tidy(best * 2)]
    elif best in (ordered[0], ordered[-1]):
        neighbour = ordered[1] if best == ordered[0] else ordered[-2]
        ratio = best / neighbour
        proposals = [tidy(best * (ratio if walking else math.sqrt(ratio)))]
    else:
        proposals = []
    return [r for r in proposals if low <= r <= high and r not in ordered]


def bracket(
    best: float, tried: Sequence[float], finest: float, toward: float | None = None
) -> list[float]:
    """The log-midpoints between `best` and its nearest tried neighbours on either side,
    for each neighbour more than `finest` times away (none once the best is bracketed that
    closely); the one towards the neighbour `toward` first, then nearest first."""
    ordered = sorted(set(tried))
    i = ordered.index(best)
    neighbours = ordered[max(0, i - 1) : i] + ordered[i + 1 : i + 2]
    neighbours.sort(key=lambda n: (n != toward, abs(math.log(n / best)), n))
    midpoints = [
        tidy(math.sqrt(best * n))
        for n in neighbours
        if max(n / best, best / n) > finest * (1 + 1e-9)
    ]
    return [r for r in midpoints if r not in ordered]


def doubled(rate: float, high: float, tried: Sequence[float]) -> float | None:
    """The classic move for a trial converging too slowly: try twice the rate."""
    candidate = tidy(rate * 2)
    return candidate if candidate <= high and candidate not in set(tried) else None


def spread_order(rates: Sequence[float]) -> list[float]:
    """Rates reordered so that each prefix covers the range evenly (van der Corput order).

    Early stopping compares a trial with those launched before it; launching a spread of
    rates first gives those comparisons a meaningful reference early.
    """
    ordered = sorted(rates)
    n = len(ordered)
    bits = max(1, (n - 1).bit_length())
    keys = [int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)]
    return [rate for _, rate in sorted(zip(keys, ordered, strict=True))]


def nearest_first(rates: Sequence[float], center: float) -> list[float]:
    """Rates ordered by distance (on the log scale) from `center`, nearest first."""
    return sorted(rates, key=lambda r: (abs(math.log(r / center)), r))
