"""The trial's summary (docs/contract.md, "Summary"): compact JSON of at most 4096 bytes.

Kubernetes cuts termination messages beyond 4096 bytes, so the evaluation history is
downsampled until the JSON fits, always keeping the rung steps (the operator compares
trials there) and the last point exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lrsweep import contract
from lrsweep.engine.rangetest import RangeTestResult

SUMMARY_LIMIT = contract.SUMMARY_LIMIT
SUMMARY_VERSION = contract.SUMMARY_VERSION
REASON_LIMIT = 300
TRIAL_LIMIT = 253  # the longest Kubernetes object name
SIGNIFICANT_DIGITS = 6
# Range-test columns live in the summary's `rangeTest` block rather than in `history`.
RANGE_COLUMNS = contract.RANGE_COLUMNS
# Evaluation points kept in memory; beyond it older points are thinned (rungs are kept).
HISTORY_CAPACITY = 10_000

Status = Literal["finished", "diverged", "failed"]
JsonNumber = int | float | str | None


@dataclass(frozen=True)
class EvalPoint:
    step: int
    metrics: Mapping[str, float]


class History:
    """Evaluation points in step order; metrics reported twice at one step are merged."""

    def __init__(self, protected: Iterable[int] = (), capacity: int = HISTORY_CAPACITY) -> None:
        self._points: dict[int, dict[str, float]] = {}
        self._protected = frozenset(protected)
        self._capacity = capacity

    def record(self, step: int, metrics: Mapping[str, float]) -> None:
        self._points.setdefault(step, {}).update(metrics)
        if len(self._points) > self._capacity:
            self._thin()

    def _thin(self) -> None:
        """Halve the unprotected points, keeping the newest one."""
        steps = sorted(self._points)
        newest = steps[-1]
        loose = [s for s in steps if s not in self._protected and s != newest]
        for step in loose[1::2]:
            del self._points[step]

    @property
    def points(self) -> list[EvalPoint]:
        return [EvalPoint(step, dict(self._points[step])) for step in sorted(self._points)]

    def __len__(self) -> int:
        return len(self._points)


def json_number(value: float) -> JsonNumber:
    """A float as JSON allows it: rounded, with non-finite values as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _columns(points: Sequence[EvalPoint]) -> list[str]:
    names: dict[str, None] = {}
    for point in points:
        names.update(dict.fromkeys(point.metrics))
    return list(names)


def _column(points: Sequence[EvalPoint], name: str) -> list[JsonNumber]:
    return [json_number(point.metrics[name]) if name in point.metrics else None for point in points]


def _spread(items: Sequence[int], count: int) -> list[int]:
    """`count` items spread evenly over `items`, first and last included."""
    if count <= 0:
        return []
    if count >= len(items):
        return list(items)
    if count == 1:
        return [items[-1]]
    last = len(items) - 1
    return [items[round(i * last / (count - 1))] for i in range(count)]


@dataclass(frozen=True)
class SummaryInput:
    trial: str
    status: Status
    reason: str
    step: int
    learning_rate: float
    points: Sequence[EvalPoint] = ()
    rungs: Collection[int] = ()
    range_test: bool = False
    range_result: RangeTestResult | None = None
    # The step this attempt went on from (a checkpoint of an earlier one); 0: from the start.
    resumed_from: int = 0


def _encode(summary: SummaryInput, points: Sequence[EvalPoint], columns: Sequence[str]) -> str:
    document: dict[str, object] = {
        "v": SUMMARY_VERSION,
        "trial": summary.trial[:TRIAL_LIMIT],
        "status": summary.status,
        "reason": one_line(summary.reason),
        "step": summary.step,
        "learningRate": json_number(summary.learning_rate),
    }
    if summary.resumed_from:
        document["resumedFrom"] = summary.resumed_from
    history: dict[str, list[JsonNumber]] = {"step": [p.step for p in points]}
    for name in columns:
        if not (summary.range_test and name in RANGE_COLUMNS):
            history[name] = _column(points, name)
    document["history"] = history
    if summary.range_test:
        # Only the range test's own points: an evaluation logged before its first step has
        # no rate, and a null would make the curve unreadable.
        ranged = [p for p in points if all(name in p.metrics for name in RANGE_COLUMNS)]
        block: dict[str, object] = {name: _column(ranged, name) for name in RANGE_COLUMNS}
        result = summary.range_result
        if result is not None:
            block["steepest"] = json_number(result.steepest)
            block["valley"] = json_number(result.valley)
            block["minimum"] = json_number(result.minimum)
            block["divergence"] = (
                None if result.divergence is None else json_number(result.divergence)
            )
        document["rangeTest"] = block
    return json.dumps(document, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) <= limit


def _largest(high: int, fits: Callable[[int], bool]) -> int:
    """The largest count in [0, high] that fits, given that 0 fits and the size grows with
    the count (binary search: a few dozen encodings even for long runs)."""
    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def render_summary(summary: SummaryInput, limit: int = SUMMARY_LIMIT) -> str:
    """The summary as JSON text of at most `limit` bytes.

    Keeps every point if they fit; otherwise the rung steps, the last point and as many
    other points, evenly spread, as fit. Should even those not fit, rungs go before the
    last point, and the history before the header.
    """
    points = list(summary.points)
    columns = _columns(points)
    required = {i for i, p in enumerate(points) if p.step in summary.rungs}
    if points:
        required.add(len(points) - 1)
    optional = [i for i in range(len(points)) if i not in required]

    def attempt(keep: Iterable[int]) -> str:
        return _encode(summary, [points[i] for i in sorted(set(keep))], columns)

    if _fits(text := attempt(range(len(points))), limit):
        return text
    if _fits(attempt(required), limit):
        count = _largest(
            len(optional), lambda k: _fits(attempt([*required, *_spread(optional, k)]), limit)
        )
        return attempt([*required, *_spread(optional, count)])
    last = [len(points) - 1] if points else []
    rungs = sorted(required - set(last))
    if _fits(attempt(last), limit):
        count = _largest(len(rungs), lambda k: _fits(attempt([*_spread(rungs, k), *last]), limit))
        return attempt([*_spread(rungs, count), *last])
    if _fits(text := attempt([]), limit):
        return text
    # Only a pathological trial name or rate gets here; the header alone always fits.
    return json.dumps(
        {
            "v": SUMMARY_VERSION,
            "trial": summary.trial[:TRIAL_LIMIT],
            "status": summary.status,
            "reason": one_line(summary.reason, 100),
            "step": summary.step,
        },
        separators=(",", ":"),
    )


def write_summary(text: str, path: str) -> str | None:
    """Write the summary; on failure return one line saying why (the caller logs it)."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        return f"could not write the summary to {path}: {error.strerror or error}"
    return None
