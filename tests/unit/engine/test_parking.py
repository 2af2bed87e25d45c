"""Parking: trials waiting at rungs make room for trials the cluster cannot start.

Covers: with room for one attempt at a time, parking decides as a sweep with room for all
(same winner, same trials stopped at the same rungs), with or without checkpoints (with
them, training no step twice), in any order of progress; a parked trial takes no slot of
`parallelism`, ignores what its ending attempt reports, and goes on once promoted (queued,
its rung values kept); the attempt that goes on uses none of the trial's retries; only
trials paused at a rung and not promoted past it are parked, the lowest rung first; parking
round-trips through the status.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lrsweep.api import TrialPhase
from lrsweep.engine.sweep import Decision, Promote, Sweep, decide, park_waiting, update
from lrsweep.engine.trials import (
    Observation,
    ProcessState,
    TrialRecord,
    from_status,
    observe,
    park,
    resume,
    to_status,
)
from tests.unit.engine.conftest import make_spec
from tests.unit.engine.world import World, bowl, run

ASHA = make_spec(search={"strategy": "asha", "parallelism": 3})


def outcome(decision: Decision) -> tuple[object, ...]:
    """What a sweep decided: its winner, and each trial's phase and rung values."""
    assert decision.best is not None
    trials = tuple((r.id, r.phase, tuple(sorted(r.rungs.items()))) for r in decision.records)
    return decision.best.learning_rate, trials


@pytest.mark.parametrize("strategy", ["asha", "adaptive"])
@pytest.mark.parametrize("checkpoints", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parking_on_one_slot_decides_as_with_room_for_all(
    strategy: str, checkpoints: bool, seed: int
) -> None:
    spec = make_spec(search={"strategy": strategy, "parallelism": 4})
    roomy_world = World(spec, bowl(0.03), seed=seed, checkpoints=checkpoints)
    roomy = run(roomy_world)
    scarce_world = World(spec, bowl(0.03), seed=seed, checkpoints=checkpoints, room=1)
    scarce = run(scarce_world)
    assert scarce_world.parked, "one slot for four trials: some must be parked"
    assert outcome(scarce) == outcome(roomy)
    if checkpoints:  # each goes on from its rung: no step is trained twice
        assert scarce_world.trained == roomy_world.trained


def test_a_parked_trial_takes_no_slot_of_parallelism() -> None:
    sweep = Sweep(ASHA, "k")
    first = decide(sweep, [])
    assert len(first.launches) == 3
    waiting = replace(first.records[0], phase=TrialPhase.RUNNING, step=25, rungs={25: 1.0})
    records = [park(waiting), *first.records[1:]]
    assert [launch.trial for launch in decide(sweep, records).launches] == ["t003"]


def test_a_parked_trial_ignores_what_its_ending_attempt_reports() -> None:
    parked = park(TrialRecord("t000", 0.1, 0, phase=TrialPhase.RUNNING, attempts=1, step=25))
    ended = Observation("t000", 1, ProcessState.LOST, reason="its pod was deleted")
    assert update(Sweep(ASHA, "k"), [parked], ended) == [parked]


def test_a_promoted_parked_trial_is_queued_to_go_on_with_its_rung_values() -> None:
    record = TrialRecord(
        "t000", 0.1, 0, phase=TrialPhase.RUNNING, attempts=1, queued=False, step=25
    )
    record = replace(record, rungs={25: 0.5})
    resumed = resume(park(record))
    assert (resumed.queued, resumed.parked_at, resumed.resumes) == (True, 0, 1)
    assert resumed.rungs == {25: 0.5}
    assert resumed.spent_steps == 25


def test_the_attempt_after_a_park_uses_none_of_the_trials_retries() -> None:
    # Attempt 2 went on after a park, and fails: with one retry it is retried.
    record = TrialRecord(
        "t000", 0.1, 0, phase=TrialPhase.RUNNING, attempts=2, queued=False, resumes=1
    )
    failed = Observation("t000", 2, ProcessState.EXITED, reason="out of memory")
    after = observe(
        record, failed, metric="val_loss", rung_steps=[25], full_steps=300, max_retries=1
    )
    assert after.queued
    assert after.phase is TrialPhase.PENDING


def test_only_trials_paused_at_a_rung_and_not_promoted_past_it_are_parked() -> None:
    sweep = Sweep(ASHA, "k")
    base = TrialRecord("t", 0.1, 0, phase=TrialPhase.RUNNING, attempts=1, queued=False)
    records = (
        replace(base, id="t000", step=75, rungs={25: 1.0, 75: 0.9}),  # at its second rung
        replace(base, id="t001", step=25, rungs={25: 1.2}),  # at its first rung
        replace(base, id="t002", step=50, rungs={25: 1.1}),  # between rungs: training
        replace(base, id="t003", step=25, rungs={25: 0.8}),  # promoted past it below
    )
    decision = Decision(records, (), (), (Promote("t003", 1, 25),), False, None, None, "")
    parked = park_waiting(sweep, decision, room=5)
    assert [r.id for r in parked.records if r.parked_at] == ["t000", "t001"]
    lowest = park_waiting(sweep, decision, room=1)
    assert [r.id for r in lowest.records if r.parked_at] == ["t001"]


def test_parking_round_trips_through_the_status() -> None:
    record = TrialRecord("t000", 0.1, 0, phase=TrialPhase.RUNNING, attempts=3, step=75)
    parked = replace(park(record), resumes=2, rungs={25: 1.0, 75: 0.9})
    assert from_status("t000", to_status(parked, 0.9)) == replace(parked, points=())
