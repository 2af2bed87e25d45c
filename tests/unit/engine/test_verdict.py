"""Verdicts on synthetic curves: one table row per verdict, plus the trainer's own flag.

Covers: diverged (non-finite, blow-up, trainer flag), unstable, overfitting, plateau,
too-slow, converging, unknown (too few points); every reason is one readable line.
"""

from __future__ import annotations

import math

import pytest

from lrsweep.api import Verdict
from lrsweep.engine.verdict import Point, judge


def curve(val: list[float], train: list[float] | None = None) -> list[Point]:
    """Evaluations at steps 0, 100, 200, ..."""
    train = train or [v * 0.9 for v in val]
    return [
        Point(i * 100, {"val_loss": v, "train_loss": t})
        for i, (v, t) in enumerate(zip(val, train, strict=True))
    ]


CASES = [
    ("nan", curve([2.0, 1.5, math.nan]), Verdict.DIVERGED, "became nan"),
    ("blow-up", curve([2.0, 3.0, 9.0, 20.0]), Verdict.DIVERGED, "grew to 10.0x"),
    (
        "overshooting",
        curve([2.0, 1.2, 1.6, 1.1, 1.5, 1.0, 1.4, 1.0]),
        Verdict.UNSTABLE,
        "overshooting",
    ),
    (
        "overfitting",
        curve([2.0, 1.0, 0.8, 0.9, 1.0, 1.1], train=[1.9, 0.9, 0.6, 0.4, 0.3, 0.2]),
        Verdict.OVERFITTING,
        "overfitting",
    ),
    ("flat", curve([2.30, 2.29, 2.29, 2.28, 2.28]), Verdict.PLATEAU, "loss flat"),
    ("slow", curve([2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4]), Verdict.TOO_SLOW, "try 2x"),
    (
        "converging",
        curve([2.0, 0.8, 0.4, 0.3, 0.27, 0.26, 0.255]),
        Verdict.CONVERGING,
        "levelling off",
    ),
    ("too few points", curve([2.0, 1.0]), Verdict.UNKNOWN, "need 3"),
]


@pytest.mark.parametrize(
    ("points", "verdict", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_curve_gets_its_verdict_and_a_one_line_reason(
    points: list[Point], verdict: Verdict, phrase: str
) -> None:
    judged = judge(points)
    assert judged.verdict is verdict
    assert phrase in judged.reason
    assert "\n" not in judged.reason


def test_trainer_diverged_flag_wins_and_keeps_its_reason() -> None:
    judged = judge(curve([2.0, 1.0, 0.5]), diverged=True, reason="loss was NaN at step 40")
    assert judged.verdict is Verdict.DIVERGED
    assert judged.reason == "loss was NaN at step 40"


def test_training_loss_alone_is_judged_when_there_is_no_validation_loss() -> None:
    points = [Point(s, {"train_loss": v}) for s, v in [(10, 2.0), (20, 0.8), (30, 0.5), (40, 0.45)]]
    assert judge(points).verdict is Verdict.CONVERGING


def test_a_flat_curve_without_a_step_zero_evaluation_is_not_called_stuck() -> None:
    points = [Point(s, {"val_loss": 0.031}) for s in (10, 20, 30, 40)]
    judged = judge(points)
    assert judged.verdict is Verdict.CONVERGING
    assert "settled before the first evaluation" in judged.reason
