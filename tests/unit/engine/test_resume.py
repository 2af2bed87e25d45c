"""Resuming a sweep from its stored status after the sweep itself stopped.

`lrsweep run --resume` goes on from a sweep's last status: decided trials keep their
results, trials that were running lost their process and start again from their first step
(their steps so far still count as compute, and they start again even without retries left).
A sweep interrupted at any point and resumed picks the same winner as one never interrupted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lrsweep.api import TrialPhase, Verdict
from lrsweep.engine.sweep import Decision, range_result_from_status
from lrsweep.engine.trials import TrialRecord, interrupted, records_from_status
from lrsweep.engine.verdict import Point
from tests.unit.engine.conftest import make_spec
from tests.unit.engine.world import World, bowl, run


def _running() -> TrialRecord:
    return TrialRecord(
        id="t003",
        learning_rate=0.03,
        seed=0,
        phase=TrialPhase.RUNNING,
        attempts=1,
        queued=False,
        step=75,
        spent_steps=20,
        points=(Point(50, {"val_loss": 0.5}), Point(75, {"val_loss": 0.4})),
        rungs={25: 0.7, 75: 0.4},
        verdict=Verdict.CONVERGING,
    )


def test_an_interrupted_trial_is_queued_to_start_again_from_its_first_step() -> None:
    again = interrupted(_running())
    assert (again.phase, again.queued, again.step) == (TrialPhase.PENDING, True, 0)
    assert again.points == ()
    assert dict(again.rungs) == {}
    assert "interrupted" in again.reason


def test_an_interrupted_trials_steps_so_far_still_count_as_compute() -> None:
    assert interrupted(_running()).steps_used == 95


def test_an_interrupted_trial_keeps_its_attempt_number_so_the_next_one_is_new() -> None:
    assert interrupted(_running()).attempts == 1


@pytest.mark.parametrize(
    "record",
    [
        replace(_running(), phase=TrialPhase.SUCCEEDED, step=300),
        replace(_running(), phase=TrialPhase.STOPPED),
        replace(_running(), phase=TrialPhase.PENDING, queued=True, attempts=0, step=0),
    ],
    ids=["succeeded", "stopped", "queued"],
)
def test_decided_and_queued_trials_stay_as_they_were(record: TrialRecord) -> None:
    assert interrupted(record) == record


def _interrupt_and_resume(strategy: str, at: int) -> tuple[Decision, Decision, World]:
    """Run until `at` trials are decided, keep only the status, go on in a fresh world."""
    spec = make_spec(search={"strategy": strategy, "candidates": 6}, trial={"maxRetries": 0})
    stopped = run(World(spec, bowl()), until=lambda d: sum(r.terminal for r in d.records) >= at)
    status = stopped.status()
    records = [interrupted(r) for r in records_from_status(status)]
    fresh = World(spec, bowl(), seed=1)  # no process survived; progress in another order
    resumed = run(fresh, records=records, range_result=range_result_from_status(status.rangeTest))
    return stopped, resumed, fresh


@pytest.mark.parametrize("strategy", ["adaptive", "asha", "grid"])
@pytest.mark.parametrize("at", [1, 3])
def test_a_resumed_sweep_picks_the_winner_of_one_never_interrupted(strategy: str, at: int) -> None:
    spec = make_spec(search={"strategy": strategy, "candidates": 6}, trial={"maxRetries": 0})
    whole = run(World(spec, bowl()))
    _, resumed, _ = _interrupt_and_resume(strategy, at)
    assert resumed.best is not None
    assert whole.best is not None
    assert resumed.best.learning_rate == whole.best.learning_rate
    assert resumed.best.score == whole.best.score


def test_a_resumed_sweep_relaunches_only_the_trials_that_were_running() -> None:
    stopped, _, fresh = _interrupt_and_resume("adaptive", 3)
    decided = {r.id for r in stopped.records if r.terminal}
    was_running = {r.id for r in stopped.records if not r.terminal and not r.queued}
    relaunched = {launch.trial for launch in fresh.launched} & {r.id for r in stopped.records}
    assert was_running
    assert relaunched >= was_running
    assert not relaunched & decided


def test_a_trial_without_retries_left_still_starts_again_after_an_interruption() -> None:
    stopped, _, fresh = _interrupt_and_resume("grid", 1)
    was_running = {r.id: r.attempts for r in stopped.records if not r.terminal and not r.queued}
    again = {
        launch.trial: launch.attempt for launch in fresh.launched if launch.trial in was_running
    }
    assert again == {trial: attempts + 1 for trial, attempts in was_running.items()}
