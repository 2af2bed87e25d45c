"""Reading range-test curves (lrsweep.engine.rangetest).

Covers: the bias-corrected moving average (exact values, incremental and whole-curve
agree); the divergence rule and the first diverging rate; the steepest slope on clean,
noisy-start and blown-up curves; the valley two thirds down the longest descent, across
small wiggles; degenerate curves; invalid input; properties: every suggestion is a rate of
the tested range, divergence comes no earlier than the lowest loss, and scaling the losses
changes nothing.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrsweep.engine.rangetest import (
    LossSmoother,
    RangeTestResult,
    analyse,
    ceiling_lr,
    divergence_lr,
    is_divergent,
    smooth,
    steepest_slope,
    valley,
)


def log_rates(count: int, low: float = 1e-5, high: float = 1.0) -> list[float]:
    ratio = (high / low) ** (1 / (count - 1))
    return [low * ratio**i for i in range(count)]


def descent(lr: float, centre: float, drop: float = 1.5) -> float:
    """A loss of 2 at small rates falling by `drop`, steepest at `centre` (logistic in log10)."""
    return 2.0 - drop / (1.0 + math.exp(-4.0 * (math.log10(lr) - math.log10(centre))))


def test_smooth_corrects_the_bias_of_the_moving_average() -> None:
    assert smooth([2.0, 4.0], beta=0.5) == pytest.approx([2.0, 10.0 / 3.0])
    assert smooth([3.0] * 5) == pytest.approx([3.0] * 5)


def test_incremental_and_whole_curve_smoothing_agree() -> None:
    losses = [2.3, 2.1, 2.5, 1.9, 1.2, 0.8]
    smoother = LossSmoother(0.9)
    assert [smoother.add(x) for x in losses] == smooth(losses, 0.9)


def test_smoother_refuses_a_beta_outside_0_1() -> None:
    with pytest.raises(ValueError, match="beta"):
        LossSmoother(1.0)


@pytest.mark.parametrize(
    ("loss", "reference", "expected"),
    [
        (7.9, 2.0, False),
        (8.1, 2.0, True),
        (math.nan, 2.0, True),
        (math.inf, 2.0, True),
        (100.0, -1.0, False),  # the factor rule is for positive losses only
    ],
)
def test_is_divergent(loss: float, reference: float, expected: bool) -> None:
    assert is_divergent(loss, reference, 4.0) is expected


@pytest.mark.parametrize(
    ("losses", "expected_index"),
    [
        ([2.0, 1.5, 1.0, 1.2], None),
        ([2.0, 1.5, 1.0, math.nan], 3),
        ([2.0, 1.0, 3.9, 4.1, 9.0], 3),  # 4 x the lowest so far, not the first
        ([10.0, 1.0, 3.9, 4.1], 3),
        ([math.inf, 1.0], 0),
    ],
)
def test_divergence_lr_is_the_first_rate_past_factor_times_the_lowest_loss(
    losses: list[float], expected_index: int | None
) -> None:
    lrs = log_rates(len(losses))
    expected = None if expected_index is None else lrs[expected_index]
    assert divergence_lr(lrs, losses, 4.0) == expected


def test_steepest_slope_finds_the_centre_of_the_descent() -> None:
    lrs = log_rates(101)
    losses = [descent(lr, centre=10**-2.5) for lr in lrs]
    assert math.log10(steepest_slope(lrs, losses)) == pytest.approx(-2.5, abs=0.06)


def test_steepest_slope_ignores_the_blow_up_after_divergence() -> None:
    lrs = log_rates(101)
    losses = [descent(lr, centre=1e-3) if lr < 0.1 else 1e3 * (1 - lr) for lr in lrs]
    assert math.log10(steepest_slope(lrs, losses)) == pytest.approx(-3.0, abs=0.06)


def test_steepest_slope_ignores_noise_at_the_start() -> None:
    lrs = log_rates(101)
    losses = [descent(lr, centre=1e-2) for lr in lrs]
    losses[1], losses[3] = 2.6, 1.4  # what a bias-corrected average of few batches does
    assert math.log10(steepest_slope(lrs, losses)) == pytest.approx(-2.0, abs=0.06)


def test_valley_is_two_thirds_down_the_descent() -> None:
    losses = [3.0 - 2.0 * i / 60 for i in range(61)] + [1.0 + 0.5 * i for i in range(1, 20)]
    lrs = log_rates(len(losses))
    assert valley(lrs, losses) == lrs[40]  # 3 - 2/3 * 2 = 1.667 is first reached at 40


def test_valley_takes_the_longest_descent() -> None:
    short = [2.0, 1.0, 1.5]  # a dip of two steps
    long = [1.5 - 0.05 * i for i in range(1, 21)]  # twenty steps down to 0.5
    losses = [*short, *long, 3.0]
    lrs = log_rates(len(losses))
    target = 1.5 - (2 / 3) * (1.5 - 0.5)
    expected = next(i for i, loss in enumerate(losses) if i >= 2 and loss <= target)
    assert valley(lrs, losses) == lrs[expected]


def test_valley_rides_over_small_wiggles() -> None:
    losses = [2.0 - 0.02 * i + (0.005 if i % 2 else 0.0) for i in range(51)]
    lrs = log_rates(len(losses))
    # One stretch from the first point to the lowest: 2/3 of the drop of 1.0 at about i=33.
    assert lrs.index(valley(lrs, losses)) in (33, 34)


def test_curve_whose_first_loss_is_nan_suggests_its_first_rate() -> None:
    lrs = log_rates(5)
    result = analyse(lrs, [math.nan, 1.0, 1.0, 1.0, 1.0])
    assert result == RangeTestResult(lrs[0], lrs[0], lrs[0], lrs[0], descent=0.0)


def test_a_curve_that_hardly_descends_is_not_informative_and_has_no_ceiling() -> None:
    # A slow learner: the smoothed loss wobbles around its start (batch noise), then rises.
    losses = [1.40, 1.395, 1.41, 1.40, 1.398, 1.42, 1.45, 1.5]
    result = analyse(log_rates(len(losses)), losses)
    assert result.descent == pytest.approx(0.0036, abs=1e-4)
    assert not result.informative
    assert result.ceiling is None


def test_a_curve_that_descends_then_climbs_back_is_informative_with_a_ceiling() -> None:
    losses = [2.0, 1.8, 1.2, 0.9, 1.0, 1.6, 2.1, 2.5]
    lrs = log_rates(len(losses))
    result = analyse(lrs, losses)
    assert result.descent == pytest.approx(0.55)
    assert result.informative
    assert result.ceiling == lrs[6]


def test_flat_curve_suggests_its_first_rate_and_no_divergence() -> None:
    lrs = log_rates(30)
    result = analyse(lrs, [2.0] * 30)
    assert (result.valley, result.minimum, result.divergence) == (lrs[0], lrs[0], None)


def test_analyse_bundles_the_suggestions() -> None:
    lrs = log_rates(101)
    losses = [descent(lr, centre=1e-3) if lr < 0.1 else 50.0 for lr in lrs]
    result = analyse(lrs, losses)
    assert result.steepest == steepest_slope(lrs, losses)
    assert result.valley == valley(lrs, losses)
    assert result.divergence == divergence_lr(lrs, losses)
    assert result.steepest < result.valley < result.minimum < (result.divergence or 0)


@pytest.mark.parametrize(
    ("lrs", "losses", "message"),
    [
        ([], [], "empty"),
        ([1e-3, 1e-2], [1.0], "2 rates but 1 losses"),
        ([1e-2, 1e-3], [1.0, 1.0], "must not decrease"),
        ([0.0, 1e-3], [1.0, 1.0], "positive"),
    ],
)
def test_invalid_curves_are_refused(lrs: list[float], losses: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analyse(lrs, losses)


@st.composite
def curves(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    start = draw(st.floats(1e-8, 1.0))
    steps = draw(st.lists(st.floats(0.0, 0.5), min_size=0, max_size=80))
    lrs = [start]
    for step in steps:
        lrs.append(lrs[-1] * math.exp(step))
    loss = st.one_of(
        st.floats(1e-3, 1e3),
        st.sampled_from([math.nan, math.inf]),
    )
    losses = draw(st.lists(loss, min_size=len(lrs), max_size=len(lrs)))
    return lrs, losses


@given(curves())
def test_suggestions_lie_within_the_tested_range(curve: tuple[list[float], list[float]]) -> None:
    lrs, losses = curve
    result = analyse(lrs, losses)
    for rate in (result.steepest, result.valley, result.minimum):
        assert rate in lrs
    assert result.divergence is None or result.divergence in lrs


@given(curves())
def test_divergence_comes_no_earlier_than_the_lowest_loss(
    curve: tuple[list[float], list[float]],
) -> None:
    result = analyse(*curve)
    assert result.divergence is None or result.divergence >= result.minimum


@given(curves(), st.sampled_from([0.25, 0.5, 2.0, 4.0]))
def test_scaling_the_losses_changes_no_suggestion(
    curve: tuple[list[float], list[float]], scale: float
) -> None:
    lrs, losses = curve
    assert analyse(lrs, [loss * scale for loss in losses]) == analyse(lrs, losses)


def test_ceiling_is_where_the_loss_climbs_back_above_its_start() -> None:
    lrs = [0.001, 0.01, 0.1, 1.0, 10.0]
    losses = [2.3, 2.0, 1.0, 2.5, 2.4]
    assert ceiling_lr(lrs, losses) == 1.0


def test_no_ceiling_when_the_loss_never_climbs_back() -> None:
    assert ceiling_lr([0.1, 1.0, 10.0], [2.0, 1.0, 1.5]) is None
