"""Learning-rate schedules: exact multipliers.

Covers: constant; linear warm-up climbing to the peak; step decay by gamma every N steps;
exponential decay as the smooth version of step decay; cosine from the peak to zero; the
default decay interval; decay counting from the end of warm-up; invalid arguments.
"""

from __future__ import annotations

import math

import pytest

from lrsweep_trainer.schedules import Schedule, parse_schedule


def values(schedule: Schedule, steps: int) -> list[float]:
    return [schedule(step) for step in range(1, steps + 1)]


def test_constant_is_the_peak_at_every_step() -> None:
    assert values(Schedule("constant", total_steps=5), 5) == [1.0] * 5


def test_warmup_climbs_linearly_to_the_peak_then_holds() -> None:
    schedule = Schedule("constant", total_steps=6, warmup_steps=4)
    assert values(schedule, 6) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_step_decay_multiplies_by_gamma_every_n_steps() -> None:
    schedule = Schedule("step", total_steps=7, decay_every=2, gamma=0.5)
    assert values(schedule, 7) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_exponential_decay_is_the_smooth_version_of_step_decay() -> None:
    schedule = Schedule("exponential", total_steps=5, decay_every=2, gamma=0.25)
    assert values(schedule, 5) == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.0625])


def test_cosine_falls_from_the_peak_towards_zero_over_the_run() -> None:
    schedule = Schedule("cosine", total_steps=4)
    expected = [0.5 * (1 + math.cos(math.pi * j / 4)) for j in range(4)]
    assert values(schedule, 4) == pytest.approx(expected)
    assert schedule(4) == pytest.approx(0.5 * (1 - math.sqrt(0.5)))


def test_cosine_reaches_zero_past_the_last_step() -> None:
    assert Schedule("cosine", total_steps=4)(100) == 0.0


def test_decay_starts_counting_after_warmup() -> None:
    schedule = Schedule("step", total_steps=8, warmup_steps=2, decay_every=2, gamma=0.1)
    assert values(schedule, 6) == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.1, 0.1])
    cosine = Schedule("cosine", total_steps=6, warmup_steps=2)
    assert values(cosine, 3) == pytest.approx([0.5, 1.0, 1.0])


def test_default_decay_interval_is_a_third_of_the_steps_after_warmup() -> None:
    schedule = Schedule("step", total_steps=310, warmup_steps=10)
    assert schedule.decay_interval == 100
    assert schedule(110) == 1.0
    assert schedule(111) == 0.5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"total_steps": 0}, "total_steps"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"decay_every": 0}, "decay_every"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
    ],
)
def test_invalid_arguments_are_refused(arguments: dict[str, int | float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule("step", **arguments)  # type: ignore[arg-type]


def test_steps_count_from_one() -> None:
    with pytest.raises(ValueError, match="count from 1"):
        Schedule()(0)


def test_unknown_schedule_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="constant, step, exponential, cosine"):
        parse_schedule("linear")
