"""Trials that go on from a checkpoint after their attempt died (docs/contract.md).

A relaunched attempt that kept its state reports the evaluations it kept and the step it
went on from. The engine counts only the steps each attempt trained (and those an attempt
trained unseen before it died, once a checkpoint past where it was last seen shows them),
picks the winner a sweep whose trials never died picks, and lets a trial kept at a rung
through it again; with one seed per rate or two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from lrsweep.api import LRSweepSpec, TrialPhase
from lrsweep.engine.trials import (
    Observation,
    ProcessState,
    TrialRecord,
    from_status,
    observe,
    requeue,
    to_status,
)
from lrsweep.engine.verdict import Point
from tests.unit.engine.conftest import make_spec
from tests.unit.engine.world import World, bowl, run

STRATEGIES = ["adaptive", "asha", "grid"]


def _spec(strategy: str, seeds: int = 1) -> LRSweepSpec:
    return make_spec(
        search={"strategy": strategy, "candidates": 6, "seeds": seeds, "parallelism": 3 * seeds},
        trial={"maxRetries": 1},
    )


def _first_attempts_die_at(step: int) -> Callable[[str, int, int], bool]:
    return lambda trial, attempt, at: attempt == 1 and at == step


def _observe(record: TrialRecord, obs: Observation) -> TrialRecord:
    return observe(
        record, obs, metric="val_loss", rung_steps=[75, 300], full_steps=300, max_retries=1
    )


def _relaunched() -> TrialRecord:
    """Attempt 1 reached step 150 and died; attempt 2 is running."""
    died = TrialRecord(
        "t001", 0.03, 0, phase=TrialPhase.RUNNING, attempts=1, queued=False, step=150
    )
    return replace(requeue(died, "retrying"), attempts=2, queued=False)


def test_an_attempt_that_went_on_from_a_checkpoint_counts_only_the_steps_it_trained() -> None:
    kept = (Point(75, {"val_loss": 0.5}), Point(150, {"val_loss": 0.4}))
    record = _observe(
        _relaunched(),
        Observation("t001", 2, ProcessState.RUNNING, 200, kept, resumed_from=150),
    )
    assert (record.start_step, record.step, record.steps_used) == (150, 200, 150 + 50)
    assert record.rungs == {75: 0.5}


def test_steps_an_attempt_trained_after_it_was_last_seen_count_once_its_checkpoint_shows() -> None:
    # Attempt 1 was last seen at step 150, then kept a checkpoint at 200 and died unseen.
    record = _observe(
        _relaunched(), Observation("t001", 2, ProcessState.RUNNING, 210, resumed_from=200)
    )
    assert (record.spent_steps, record.steps_used) == (200, 210)
    again = _observe(record, Observation("t001", 2, ProcessState.RUNNING, 220, resumed_from=200))
    assert again.steps_used == 220  # counted once


def test_steps_trained_by_a_resumed_attempt_count_once_more_when_it_dies_too() -> None:
    record = _observe(
        _relaunched(), Observation("t001", 2, ProcessState.RUNNING, 200, resumed_from=150)
    )
    again = requeue(record, "retrying")
    assert (again.spent_steps, again.start_step, again.steps_used) == (200, 0, 200)


def test_where_an_attempt_went_on_from_round_trips_through_the_status() -> None:
    record = _observe(
        _relaunched(), Observation("t001", 2, ProcessState.RUNNING, 200, resumed_from=150)
    )
    assert from_status("t001", to_status(record, None)).steps_used == record.steps_used


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("crash", [75, 150], ids=["at-a-rung", "between-rungs"])
@pytest.mark.parametrize("seeds", [1, 2])
def test_trials_that_go_on_from_checkpoints_pick_the_winner_of_trials_that_never_died(
    strategy: str, crash: int, seeds: int
) -> None:
    whole = run(World(_spec(strategy, seeds), bowl()))
    world = World(
        _spec(strategy, seeds), bowl(), crash=_first_attempts_die_at(crash), checkpoints=True
    )
    resumed = run(world)
    assert any(launch.attempt == 2 for launch in world.launched)
    assert resumed.best is not None
    assert whole.best is not None
    assert (resumed.best.learning_rate, resumed.best.score) == (
        whole.best.learning_rate,
        whole.best.score,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("checkpoints", [True, False], ids=["checkpoints", "none"])
@pytest.mark.parametrize("seeds", [1, 2])
def test_the_compute_counted_is_the_steps_every_attempt_trained(
    strategy: str, checkpoints: bool, seeds: int
) -> None:
    world = World(
        _spec(strategy, seeds),
        bowl(),
        crash=_first_attempts_die_at(150),
        checkpoints=checkpoints,
    )
    decision = run(world)
    assert sum(r.steps_used for r in decision.records) == world.trained


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_checkpoints_save_the_steps_a_died_attempt_had_trained(strategy: str) -> None:
    def used(checkpoints: bool) -> int:
        world = World(
            _spec(strategy), bowl(), crash=_first_attempts_die_at(150), checkpoints=checkpoints
        )
        return sum(r.steps_used for r in run(world).records)

    assert used(checkpoints=True) < used(checkpoints=False)
