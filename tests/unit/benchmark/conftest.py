"""Documents and recorded runs for the benchmark's unit tests: no process runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lrsweep.api import LRSweep
from lrsweep.benchmark.cache import CurveCache
from lrsweep.engine.verdict import Point
from lrsweep.runtime.following import Curve

STEPS, EVERY = 30, 10
# log_grid(0.001, 1, 4): the grid's rates with candidates 4, and the dense rates 10x apart.
RATES = (0.001, 0.01, 0.1, 1.0)


def sweep_doc(name: str = "demo", steps: int = STEPS, **search: Any) -> LRSweep:
    """A small sweep of `python train.py` over 0.001..1 (30 steps, evaluated every 10)."""
    return LRSweep.model_validate(
        {
            "apiVersion": "lrsweep.dev/v1alpha1",
            "kind": "LRSweep",
            "metadata": {"name": name},
            "spec": {
                "search": {"min": 0.001, "max": 1.0, "parallelism": 4, **search},
                "budget": {"steps": steps, "evalEvery": EVERY, "minSteps": EVERY},
                "trial": {
                    "maxRetries": 0,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "t", "image": "python", "command": ["python", "train.py"]}
                            ]
                        }
                    },
                },
            },
        }
    )


def run(rate: float, final: float, *, end: int = STEPS, diverged: bool = False) -> Curve:
    """A run whose val_loss falls from 4 x `final` to `final` at the budget (`end`: where it
    stopped, diverged or not)."""
    points = tuple(
        Point(step, {"val_loss": final * (1 + 3 * (STEPS - step) / STEPS)})
        for step in range(0, end + 1, EVERY)
    )
    if diverged:
        points = (*points[:-1], Point(end, {"val_loss": float("inf")}))
    return Curve(rate, points, end, diverged=diverged)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[CurveCache]:
    """An empty cache of curves, held open (and locked) for the test."""
    with CurveCache(tmp_path / "curves", {}) as opened:
        yield opened
