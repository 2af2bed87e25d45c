"""Candidate rates: log grids, log-uniform draws, stepping past an edge and the 2x move.

Covers: candidates stay within bounds (property); grids include both ends and are evenly
spaced on the log scale; draws are reproducible from the seed; a best rate at an edge of
the tried rates gets one rate beyond it at the same spacing, an inner one none; launch
orders are permutations.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lrsweep.engine import space

bounds = st.tuples(
    st.floats(1e-8, 1e2, allow_nan=False), st.floats(1.01, 1e4, allow_nan=False)
).map(lambda t: (t[0], t[0] * t[1]))


@given(bounds=bounds, count=st.integers(1, 64))
def test_log_grid_stays_within_bounds(bounds: tuple[float, float], count: int) -> None:
    low, high = bounds
    rates = space.log_grid(low, high, count)
    assert len(rates) == count
    assert all(low * (1 - 1e-3) <= r <= high * (1 + 1e-3) for r in rates)


@given(bounds=bounds, count=st.integers(1, 64), seed=st.text(max_size=8))
def test_log_uniform_stays_within_bounds(
    bounds: tuple[float, float], count: int, seed: str
) -> None:
    low, high = bounds
    rates = space.log_uniform(low, high, count, seed)
    assert all(low * (1 - 1e-3) <= r <= high * (1 + 1e-3) for r in rates)


def test_log_grid_is_evenly_spaced_on_a_log_scale() -> None:
    assert space.log_grid(1e-4, 1.0, 5) == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def test_log_uniform_is_reproducible_from_its_seed() -> None:
    assert space.log_uniform(1e-5, 1, 6, "a") == space.log_uniform(1e-5, 1, 6, "a")
    assert space.log_uniform(1e-5, 1, 6, "a") != space.log_uniform(1e-5, 1, 6, "b")


def test_no_rate_beyond_the_edges_when_the_best_is_inside() -> None:
    assert space.beyond_edge(0.01, [0.001, 0.01, 0.1], 1e-5, 1.0) == []


def test_a_best_highest_rate_gets_one_rate_above_at_half_the_spacing() -> None:
    assert space.beyond_edge(0.1, [0.01, 0.1], 1e-5, 10.0) == [0.3162]


def test_a_best_lowest_rate_gets_one_rate_below_at_half_the_spacing() -> None:
    assert space.beyond_edge(0.01, [0.01, 0.04, 0.16], 1e-5, 1.0) == [0.005]


def test_a_walk_past_the_edge_goes_on_at_the_whole_spacing() -> None:
    assert space.beyond_edge(0.005, [0.005, 0.01, 0.04], 1e-5, 1.0, walking=True) == [0.0025]


def test_a_single_rate_gets_half_and_double() -> None:
    assert space.beyond_edge(0.01, [0.01], 1e-5, 1.0) == [0.005, 0.02]


def test_beyond_edge_never_leaves_the_user_range() -> None:
    assert space.beyond_edge(1.0, [0.1, 1.0], 1e-5, 1.0) == []


def test_bracket_offers_the_midpoint_towards_the_named_neighbour_first() -> None:
    assert space.bracket(0.04, [0.01, 0.04, 0.16], 1.5, toward=0.16) == [0.08, 0.02]
    assert space.bracket(0.04, [0.01, 0.04, 0.16], 1.5, toward=0.01) == [0.02, 0.08]


def test_bracket_offers_no_midpoint_towards_a_neighbour_already_close() -> None:
    assert space.bracket(0.04, [0.03, 0.04, 0.16], 1.5, toward=0.03) == [0.08]


def test_doubling_is_offered_until_it_leaves_the_range_or_was_tried() -> None:
    assert space.doubled(0.01, 1.0, [0.01]) == 0.02
    assert space.doubled(0.01, 1.0, [0.01, 0.02]) is None
    assert space.doubled(0.8, 1.0, []) is None


@given(n=st.integers(1, 40))
def test_spread_order_is_a_permutation(n: int) -> None:
    rates = space.log_grid(1e-4, 1.0, n)
    assert sorted(space.spread_order(rates)) == sorted(rates)


def test_spread_order_covers_the_range_early() -> None:
    rates = space.log_grid(1e-4, 1e3, 8)
    first = space.spread_order(rates)[:2]
    assert first == [rates[0], rates[4]]


def test_nearest_first_orders_by_log_distance() -> None:
    assert space.nearest_first([1e-3, 1e-2, 1e-1, 1.0], 0.05) == [1e-1, 1e-2, 1.0, 1e-3]
