"""The sweep state machine, driven through a simulated world.

Covers: every strategy finishes and picks the rate nearest the true optimum; parallelism is
honoured; adaptive searches below its range test's limit, compares first at its second rung,
trains several finalists to the full budget (only ASHA's share after a range test that said
nothing), judges its whole first round as one cohort
where that leaves a trial slot free (so gated trials never wait on each other forever) and
steps past an edge only when the best candidate sits there (half a spacing, then on at
that step while it wins), else probes towards the better neighbour first (compared at the
deepest rung both recorded); ASHA stops trials
early; the winner does not depend on the order in which trials progress (same inputs, same actions);
failed attempts are retried then marked Failed (the last one told it is), usage errors at
once; a sweep where nothing completes ends Failed with a reason; a sweep whose trials do not
report the objective where it is needed (at rungs with early stopping, else at the full
budget) ends at once, naming what they report (or asking for it at every evaluation where it
is reported only at some), but not on an evaluation scraped half-written; a trial that
evaluates either side of a rung but not at it is named in the message (early stopping
cannot judge it there); maxTrials caps the
sweep; status round-trips through the API model. With several seeds per rate, a rate is kept
or cut as a whole (its seed-0 trial is judged, the other seeds follow it: they wait at a
rung until it passes, stop with it, and count only once it is through), and the winner is
the best mean over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrsweep.api import LRSweepSpec, Phase, TrialPhase, Verdict
from lrsweep.engine import strategies
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.sweep import Decision, Sweep, decide, update
from lrsweep.engine.trials import TrialRecord, from_status
from lrsweep.engine.verdict import Point
from tests.unit.engine.conftest import make_spec
from tests.unit.engine.world import World, bowl, run


def _near(a: float, b: float, factor: float) -> bool:
    return abs(math.log(a / b)) <= math.log(factor)


def test_grid_runs_every_candidate_to_its_full_budget() -> None:
    world = World(make_spec(search={"strategy": "grid"}), bowl(0.03))
    decision = run(world)
    assert len(world.launched) == 8
    assert all(launch.steps == 300 for launch in world.launched)
    assert decision.best is not None
    rates = [launch.learning_rate for launch in world.launched]
    assert decision.best.learning_rate == min(rates, key=lambda r: world.loss(r, 300))


def test_explicit_values_replace_the_range() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [0.001, 0.01, 0.1]})
    world = World(spec, bowl(0.01))
    decision = run(world)
    assert sorted(launch.learning_rate for launch in world.launched) == [0.001, 0.01, 0.1]
    assert decision.best is not None
    assert decision.best.learning_rate == 0.01


def test_random_search_is_reproducible_from_the_sweep_key() -> None:
    spec = make_spec(search={"strategy": "random"})
    first = World(spec, bowl())
    second = World(spec, bowl())
    run(first, key="uid-1")
    run(second, key="uid-1")
    rates = [launch.learning_rate for launch in first.launched]
    assert rates == [launch.learning_rate for launch in second.launched]
    assert all(1e-4 <= r <= 10.0 for r in rates)


def test_parallelism_bounds_the_trials_running_at_once() -> None:
    spec = make_spec(search={"strategy": "grid", "parallelism": 2})
    world = World(spec, bowl())
    sweep = Sweep(spec, "k")
    records: list[TrialRecord] = []
    peak = 0
    for _ in range(1000):
        for obs in world.tick():
            records = update(sweep, records, obs)
        decision = decide(sweep, records)
        records = list(decision.records)
        for launch in decision.launches:
            world.launch(launch)
        peak = max(peak, len(world.running))
        if decision.done:
            break
    assert peak == 2


def test_asha_stops_poor_trials_early_and_spends_less_than_a_grid() -> None:
    asha_world = World(make_spec(search={"strategy": "asha"}), bowl(0.03))
    grid_world = World(make_spec(search={"strategy": "grid"}), bowl(0.03))
    asha = run(asha_world)
    grid = run(grid_world)
    stopped = [r for r in asha.records if r.phase is TrialPhase.STOPPED]
    assert stopped, "some trials must be stopped at a rung"
    assert all("not in the top 1/3" in r.reason for r in stopped)
    used = sum(r.steps_used for r in asha.records)
    assert used < 0.6 * sum(r.steps_used for r in grid.records)
    assert asha.best is not None
    assert grid.best is not None
    assert asha.best.learning_rate == grid.best.learning_rate


def test_adaptive_runs_a_range_test_first_then_searches_below_its_limit() -> None:
    world = World(make_spec(), bowl(0.05, cliff=10))
    decision = run(world)
    assert world.launched[0].mode == "range-test"
    assert decision.range_result is not None
    low, high = strategies.adaptive_bounds(decision.range_result, 1e-5, 1.0)
    first = [r.learning_rate for r in decision.records if r.mode == "train" and r.round == 0]
    assert len(first) == 8
    assert all(low * 0.999 <= lr <= high * 1.001 for lr in first)
    assert decision.best is not None
    assert _near(decision.best.learning_rate, 0.05, 1.5)


def test_adaptive_compares_first_at_its_second_rung() -> None:
    asha = Sweep(make_spec(search={"strategy": "asha"}), "k")
    adaptive = Sweep(make_spec(), "k")
    assert asha.rungs == [25, 75, 225]
    assert adaptive.rungs == [75, 225]
    assert adaptive.rung_steps == [75, 225, 300]


def test_adaptive_trains_several_finalists_to_the_full_budget() -> None:
    decision = run(World(make_spec(), bowl(0.05, cliff=10)))
    full = [r for r in decision.records if r.phase is TrialPhase.SUCCEEDED and r.mode == "train"]
    assert len(full) >= strategies.FINALISTS
    stopped = [r for r in decision.records if r.phase is TrialPhase.STOPPED]
    assert stopped, "early stopping still cuts the poor candidates"


def test_adaptive_trains_its_finalists_to_the_full_budget_past_several_rungs() -> None:
    # 5 candidates compared at steps 75 and 225: the top third of 5 at step 75 is 2 trials,
    # so the finalists must pass that rung as well as the last.
    spec = make_spec(search={"candidates": 5, "parallelism": 4})
    assert Sweep(spec, "k").rungs == [75, 225]
    decision = run(World(spec, bowl(0.05, cliff=10)))
    first_round = [r for r in decision.records if r.mode == "train" and r.round == 0]
    full = [r for r in first_round if r.phase is TrialPhase.SUCCEEDED]
    assert len(full) == strategies.FINALISTS


def _one_rung_spec(**search: object) -> LRSweepSpec:
    """adaptive with a single comparison (at step 180) before the full budget of 540."""
    budget = {"steps": 540, "evalEvery": 60, "minSteps": 60}
    return make_spec(search={"parallelism": 4, **search}, budget=budget)


def test_adaptive_judges_its_whole_first_round_together() -> None:
    spec = _one_rung_spec(values=[0.001, 0.003, 0.01, 0.03, 0.1, 0.3])
    sweep = Sweep(spec, "k")
    assert sweep.rungs == [180]
    assert strategies.cohort(spec) == 6
    first = decide(sweep, [])
    assert [launch.trial for launch in first.launches] == ["t000", "t001", "t002", "t003"]
    values = {"t000": 0.4, "t001": 0.1, "t002": 0.3, "t003": 0.2}
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs={180: values[r.id]}, step=180)
        if r.id in values
        else r
        for r in first.records
    ]
    decision = decide(sweep, records)
    # With 2 candidates still queued: the first group's best is among the round's 3
    # finalists whatever they record (promoted now), its worst cannot be (cut now, freeing
    # its slot for the next candidate); the other two wait for them.
    assert strategies.FINALISTS == 3
    assert [s.trial for s in decision.stops] == ["t000"]
    assert [p.trial for p in decision.promotions] == ["t001"]
    assert [launch.trial for launch in decision.launches] == ["t004"]


def test_adaptive_judges_only_the_first_launch_group_together_when_slots_are_few() -> None:
    assert strategies.cohort(_one_rung_spec(parallelism=2)) == 2
    assert strategies.cohort(_one_rung_spec(seeds=3)) == 4
    assert strategies.cohort(_one_rung_spec(strategy="asha")) == 4


@settings(max_examples=30, deadline=None)
@given(
    parallelism=st.integers(1, 6),
    seeds=st.integers(1, 3),
    candidates=st.integers(2, 10),
    order_seed=st.integers(0, 10_000),
)
def test_gated_trials_of_adaptive_never_wait_on_each_other_forever(
    parallelism: int, seeds: int, candidates: int, order_seed: int
) -> None:
    search = {"parallelism": parallelism, "seeds": seeds, "candidates": candidates}
    spec = make_spec(search={**search, "maxTrials": 100})
    decision = run(World(spec, bowl(0.02, cliff=10), seed=order_seed))
    assert decision.best is not None


def _finished(index: int, lr: float, final: float) -> TrialRecord:
    return TrialRecord(
        f"t{index:03d}",
        lr,
        0,
        phase=TrialPhase.SUCCEEDED,
        queued=False,
        attempts=1,
        rungs={300: final},
        verdict=Verdict.CONVERGING,
    )


def test_adaptive_steps_half_a_spacing_past_the_edge_when_the_best_is_the_lowest() -> None:
    records = [_finished(i, lr, final) for i, lr, final in ((1, 0.01, 0.1), (2, 0.04, 0.2))]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    assert strategies.adaptive(ctx) == [strategies.Proposal(0.005, 0)]


def test_adaptive_walks_on_at_the_whole_step_while_the_step_past_the_edge_wins() -> None:
    first = [_finished(i, lr, final) for i, lr, final in ((1, 0.01, 0.2), (2, 0.04, 0.3))]
    step = replace(_finished(3, 0.005, 0.1), round=1)
    ctx = strategies.Context(make_spec(), "k", [*first, step], range_result=None)
    assert strategies.adaptive(ctx) == [strategies.Proposal(0.0025, 0)]


def test_adaptive_probes_towards_the_better_neighbour_when_room_is_left_for_one() -> None:
    # 4 R spent: room for one more full run, between the best (0.02) and the better of its
    # neighbours (0.08, which lasted longer than 0.005).
    rates = ((1, 0.005, 0.5), (2, 0.02, 0.1), (3, 0.08, 0.2), (4, 0.32, 0.4))
    records = [replace(_finished(i, lr, final), step=300) for i, lr, final in rates]
    stopped = replace(records[0], phase=TrialPhase.STOPPED, rungs={75: 0.5})
    ctx = strategies.Context(make_spec(), "k", [stopped, *records[1:]], range_result=None)
    assert strategies.adaptive(ctx) == [strategies.Proposal(0.04, 0)]


def test_neighbours_are_compared_at_the_deepest_rung_both_recorded() -> None:
    # Room for one probe. The upper neighbour (0.08) led the lower (0.005) at rung 75 and
    # diverged after it: the optimum more likely lies towards it, below the cliff, than
    # towards the slow rate that merely ran longer.
    lower = replace(_finished(1, 0.005, 0.3), rungs={75: 0.4, 300: 0.3}, step=300)
    best = replace(_finished(2, 0.02, 0.1), rungs={75: 0.2, 300: 0.1}, step=300)
    upper = replace(
        _finished(3, 0.08, 0.0),
        phase=TrialPhase.DIVERGED,
        verdict=Verdict.DIVERGED,
        rungs={75: 0.25},
        step=300,
    )
    far = replace(_finished(4, 0.32, 0.9), phase=TrialPhase.STOPPED, rungs={75: 0.9}, step=300)
    ctx = strategies.Context(make_spec(), "k", [lower, best, upper, far], range_result=None)
    assert strategies.adaptive(ctx) == [strategies.Proposal(0.04, 0)]


def test_adaptive_brackets_an_inside_best_halfway_to_its_neighbours() -> None:
    rates = ((1, 0.01, 0.3), (2, 0.02, 0.1), (3, 0.04, 0.2))
    records = [_finished(i, lr, final) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    assert strategies.adaptive(ctx) == [
        strategies.Proposal(0.01414, 0),
        strategies.Proposal(0.02828, 0),
    ]


def test_steps_trained_again_after_a_park_do_not_count_against_refinement() -> None:
    # As above, but the best trial was parked at step 150 and trained it again: 4.5 R
    # trained, 4 R of search; the same probe as a sweep never parked.
    rates = ((1, 0.005, 0.5), (2, 0.02, 0.1), (3, 0.08, 0.2), (4, 0.32, 0.4))
    records = [replace(_finished(i, lr, final), step=300) for i, lr, final in rates]
    stopped = replace(records[0], phase=TrialPhase.STOPPED, rungs={75: 0.5})
    parked = replace(records[1], spent_steps=150, counted_to=150, resumes=1)
    ctx = strategies.Context(make_spec(), "k", [stopped, parked, *records[2:]], range_result=None)
    assert sum(r.steps_used for r in ctx.records) == 4.5 * 300
    assert strategies.adaptive(ctx) == [strategies.Proposal(0.04, 0)]


def test_adaptive_stops_once_the_best_is_bracketed_within_sqrt_2() -> None:
    rates = ((1, 0.01, 0.3), (2, 0.0141, 0.1), (3, 0.0199, 0.2))
    records = [_finished(i, lr, final) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    assert strategies.adaptive(ctx) == []


def test_adaptive_refines_no_further_once_the_sweep_spent_its_refinement_budget() -> None:
    # Five full runs (5 R) already, the best inside and far from its neighbours.
    rates = ((1, 0.001, 0.3), (2, 0.01, 0.1), (3, 0.1, 0.2), (4, 1.0, 0.4), (5, 1e-4, 0.5))
    records = [replace(_finished(i, lr, final), step=300) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    assert strategies.adaptive(ctx) == []


def test_adaptive_doubles_a_too_slow_best_only_within_its_refinement_budget() -> None:
    rates = ((1, 0.001, 0.3), (2, 0.01, 0.1), (3, 0.1, 0.2), (4, 1.0, 0.4), (5, 1e-4, 0.5))
    spent = [replace(_finished(i, lr, final), step=300) for i, lr, final in rates]
    slow = [replace(r, verdict=Verdict.TOO_SLOW) if r.id == "t002" else r for r in spent]
    ctx = strategies.Context(make_spec(), "k", slow, range_result=None)
    assert strategies.adaptive(ctx) == []


def _first_round_at_its_first_comparison(range_result: RangeTestResult) -> Decision:
    """adaptive's four candidates, each at its first comparison (step 75), 0.1 to 0.4."""
    spec = make_spec(search={"candidates": 4, "parallelism": 4})
    test = TrialRecord("t000", 0.0, 0, mode="range-test", phase=TrialPhase.SUCCEEDED)
    first = [
        TrialRecord(
            f"t00{i}",
            lr,
            0,
            phase=TrialPhase.RUNNING,
            queued=False,
            attempts=1,
            step=75,
            rungs={75: value},
        )
        for i, (lr, value) in enumerate(((0.01, 0.1), (0.1, 0.2), (0.001, 0.3), (1.0, 0.4)), 1)
    ]
    return decide(Sweep(spec, "k"), [replace(test, queued=False), *first], range_result)


def test_adaptive_trains_several_finalists_after_an_informative_range_test() -> None:
    informative = RangeTestResult(0.01, 0.02, 1.0, 0.3, None, descent=0.4)
    decision = _first_round_at_its_first_comparison(informative)
    assert [s.trial for s in decision.stops] == ["t004"]


def test_adaptive_keeps_only_ashas_share_after_a_range_test_that_said_nothing() -> None:
    # Its candidates then lie decades apart, where full-budget scores differ by far more
    # than seed noise: the budget goes to refining around the best instead.
    flat = RangeTestResult(1e-4, 1e-4, None, 2e-4, None, descent=0.01)
    decision = _first_round_at_its_first_comparison(flat)
    assert [s.trial for s in decision.stops] == ["t003", "t004"]
    assert [p.trial for p in decision.promotions] == ["t001", "t002"]


def test_adaptive_searches_the_whole_range_after_a_range_test_that_said_nothing() -> None:
    flat = RangeTestResult(1e-4, 1e-4, None, 2e-4, None, descent=0.01)
    assert strategies.adaptive_bounds(flat, 1e-5, 3.0) == (1e-5, 3.0)


def test_adaptive_searches_two_decades_below_an_informative_range_tests_limit() -> None:
    informative = RangeTestResult(0.01, 0.02, 1.0, 0.3, None, descent=0.4)
    low, high = strategies.adaptive_bounds(informative, 1e-5, 3.0)
    assert low == pytest.approx(0.004)
    assert high == pytest.approx(0.4)


def test_a_winner_at_the_edge_of_the_rates_tried_is_reported_as_such() -> None:
    records = [_finished(i, lr, final) for i, lr, final in ((1, 0.01, 0.1), (2, 0.02, 0.2))]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    best = strategies.best_rate(ctx)
    assert best is not None
    assert "lowest tried" in strategies.edge_note(ctx, best)


def test_an_edge_note_names_the_compute_budget_when_that_stopped_refinement() -> None:
    rates = ((1, 0.001, 0.1), (2, 0.01, 0.2), (3, 0.1, 0.3), (4, 1.0, 0.4), (5, 3.0, 0.5))
    records = [replace(_finished(i, lr, final), step=300) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    best = strategies.best_rate(ctx)
    assert best is not None
    assert strategies.adaptive(ctx) == []
    assert "compute budget" in strategies.edge_note(ctx, best)


def test_an_edge_note_asks_for_more_rounds_when_the_rounds_ran_out() -> None:
    rates = ((1, 0.01, 0.1), (2, 0.02, 0.2))
    records = [replace(_finished(i, lr, final), round=1) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(search={"refineRounds": 1}), "k", records, None)
    best = strategies.best_rate(ctx)
    assert best is not None
    assert "raise search.refineRounds" in strategies.edge_note(ctx, best)


def test_a_bracketed_winner_carries_no_edge_note() -> None:
    rates = ((1, 0.01, 0.3), (2, 0.02, 0.1), (3, 0.04, 0.2))
    records = [_finished(i, lr, final) for i, lr, final in rates]
    ctx = strategies.Context(make_spec(), "k", records, range_result=None)
    best = strategies.best_rate(ctx)
    assert best is not None
    assert strategies.edge_note(ctx, best) == ""


@settings(max_examples=25, deadline=None)
@given(
    order_seed=st.integers(0, 10_000),
    strategy=st.sampled_from(["asha", "adaptive"]),
    seeds=st.sampled_from([1, 2]),
)
def test_winner_does_not_depend_on_the_order_trials_progress(
    order_seed: int, strategy: str, seeds: int
) -> None:
    spec = make_spec(search={"strategy": strategy, "seeds": seeds, "maxTrials": 64})
    reference = run(World(spec, bowl(0.02), seed=0))
    shuffled = run(World(spec, bowl(0.02), seed=order_seed))
    assert reference.best == shuffled.best
    assert _outcomes(reference.records) == _outcomes(shuffled.records)


def _outcomes(records: Sequence[TrialRecord]) -> list[tuple[str, float, str]]:
    """Each trial's id, rate and phase.

    A later seed of a rate cut at seed 0 is just "cut": whether it diverged on its own
    before the stop reached it depends on timing, and so does nothing else.
    """
    leads = {(r.learning_rate, r.round): r for r in records if r.seed == 0}
    out = []
    for r in records:
        lead = leads.get((r.learning_rate, r.round))
        cut = r.seed > 0 and lead is not None and lead.phase is not TrialPhase.SUCCEEDED
        out.append((r.id, r.learning_rate, "cut" if cut else r.phase.value))
    return out


def test_same_inputs_give_same_decision() -> None:
    spec = make_spec()
    world = World(spec, bowl())
    final = run(world)
    again = decide(Sweep(spec, "sweep-uid"), final.records, final.range_result)
    assert again.best == final.best
    assert again.launches == ()
    assert again.stops == ()


def test_a_failing_attempt_is_retried_then_marked_failed() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [0.01, 0.03]}, trial={"maxRetries": 1})
    world = World(spec, bowl(), fail=lambda trial, attempt: trial == "t000")
    decision = run(world)
    attempts = [
        (launch.attempt, launch.final) for launch in world.launched if launch.trial == "t000"
    ]
    assert attempts == [(1, False), (2, True)]  # the second is told no attempt follows
    failed = decision.records[0]
    assert failed.phase is TrialPhase.FAILED
    assert failed.verdict is Verdict.FAILED
    assert "failed after 2 attempt(s): exit code 1" in failed.reason
    assert decision.best is not None
    assert decision.best.trial == "t001"


def test_a_usage_error_is_not_retried() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [0.01, 0.03]}, trial={"maxRetries": 2})
    world = World(spec, bowl(), fail=lambda trial, attempt: trial == "t000", exit_code=2)
    decision = run(world)
    assert [launch.attempt for launch in world.launched if launch.trial == "t000"] == [1]
    failed = decision.records[0]
    assert failed.phase is TrialPhase.FAILED
    assert "failed after 1 attempt(s): exit code 2 (a usage error: not retried)" in failed.reason
    assert decision.best is not None
    assert decision.best.trial == "t001"


def test_a_sweep_whose_trials_never_start_gives_up_after_one_trials_retries() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [0.01, 0.1]}, trial={"maxRetries": 1})
    world = World(spec, bowl(), fail=lambda trial, attempt: True)
    decision = run(world)
    assert decision.broken
    assert decision.status().phase is Phase.FAILED
    assert "trials fail before their first step" in decision.message
    assert "exit code 1" in decision.message
    assert len([launch for launch in world.launched if launch.trial == "t000"]) == 2


def test_a_sweep_whose_trials_do_not_report_the_objective_ends_early_naming_what_they_report() -> (
    None
):
    spec = make_spec(search={"strategy": "grid"}, objective={"metric": "val_los"})
    world = World(spec, bowl())
    decision = run(world)
    assert decision.broken
    assert decision.status().phase is Phase.FAILED
    assert "the objective metric 'val_los' is not reported" in decision.message
    assert "reported train_loss, val_loss at step 300" in decision.message
    assert len(world.launched) < 8


def _decide_on_one_running_trial(strategy: str, points: tuple[Point, ...]) -> Decision:
    """What the sweep decides when its only trial (rate 0.01) has recorded `points`."""
    sweep = Sweep(make_spec(search={"strategy": strategy, "values": [0.01]}), "sweep-uid")
    record = TrialRecord(
        "t000", 0.01, 0, phase=TrialPhase.RUNNING, attempts=1, queued=False, points=points
    )
    return decide(sweep, [record])


def _first_rung(strategy: str) -> int:
    return strategies.rungs(make_spec(search={"strategy": strategy}))[0]


def test_an_early_stopping_sweep_needs_the_objective_at_its_rungs() -> None:
    rung = _first_rung("asha")
    points = (Point(rung, {"train_loss": 0.5}), Point(rung + 25, {"train_loss": 0.4}))
    decision = _decide_on_one_running_trial("asha", points)
    assert decision.broken
    assert f"reported train_loss at step {rung};" in decision.message


def test_an_objective_missing_only_at_a_rung_asks_for_it_at_every_evaluation() -> None:
    rung = _first_rung("asha")
    points = (
        Point(rung - 25, {"train_loss": 0.6, "val_loss": 0.7}),
        Point(rung, {"train_loss": 0.5}),
        Point(rung + 25, {"train_loss": 0.4}),
    )
    decision = _decide_on_one_running_trial("asha", points)
    assert decision.broken
    assert f"'val_loss' at some evaluations but not at step {rung}" in decision.message
    assert "report it at every evaluation" in decision.message


def test_a_sweep_without_early_stopping_needs_the_objective_only_at_the_full_budget() -> None:
    rung = _first_rung("grid")
    points = (Point(rung, {"train_loss": 0.5}), Point(rung + 25, {"train_loss": 0.4}))
    assert not _decide_on_one_running_trial("grid", points).broken


def test_a_half_written_newest_evaluation_is_not_taken_for_a_missing_objective() -> None:
    rung = _first_rung("asha")
    written = Point(rung, {"train_loss": 0.5})  # its val_loss not yet set when scraped
    decision = _decide_on_one_running_trial("asha", (written,))
    assert not decision.broken
    assert not decision.done


def _evaluations(*steps: int) -> tuple[Point, ...]:
    return tuple(Point(step, {"train_loss": 0.5, "val_loss": 0.6}) for step in steps)


def test_a_trial_evaluating_either_side_of_a_rung_but_not_at_it_is_named() -> None:
    rung = _first_rung("asha")
    decision = _decide_on_one_running_trial("asha", _evaluations(rung - 10, rung + 10))
    assert not decision.broken
    assert (
        f"trial t000 evaluated at steps {rung - 10}, {rung + 10} but not at {rung}"
        in decision.message
    )
    assert "budget.evalEvery = 25 steps" in decision.message


def test_a_trial_evaluating_at_its_rungs_gets_no_note() -> None:
    rung = _first_rung("asha")
    decision = _decide_on_one_running_trial("asha", _evaluations(rung - 25, rung, rung + 25))
    assert "but not at" not in decision.message


def test_an_attempt_resumed_past_a_rung_is_not_taken_for_one_that_skipped_it() -> None:
    rung = _first_rung("asha")
    decision = _decide_on_one_running_trial("asha", _evaluations(rung + 25, rung + 50))
    assert "but not at" not in decision.message


def test_a_sweep_without_early_stopping_does_not_mind_where_trials_evaluate() -> None:
    rung = _first_rung("asha")
    decision = _decide_on_one_running_trial("grid", _evaluations(rung - 10, rung + 10))
    assert "but not at" not in decision.message


def test_a_sweep_where_no_trial_completes_ends_failed_with_the_reason() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [1000.0]}, trial={"maxRetries": 0})
    status = run(World(spec, bowl())).status()
    assert status.phase is Phase.FAILED
    assert "no trial completed its full budget" in status.message


def test_diverging_rates_get_the_diverged_verdict() -> None:
    spec = make_spec(search={"strategy": "grid", "values": [0.01, 100.0]})
    decision = run(World(spec, bowl(0.01)))
    diverged = next(r for r in decision.records if r.learning_rate == 100.0)
    assert diverged.phase is TrialPhase.DIVERGED
    assert diverged.verdict is Verdict.DIVERGED


def test_max_trials_caps_the_number_of_trials() -> None:
    spec = make_spec(search={"strategy": "grid", "maxTrials": 3})
    world = World(spec, bowl())
    decision = run(world)
    assert len(decision.records) == 3


def test_status_round_trips_records_for_a_restart() -> None:
    spec = make_spec()
    final = run(World(spec, bowl()))
    status = final.status()
    rebuilt = [from_status(tid, t) for tid, t in status.trials.items()]
    again = decide(Sweep(spec, "sweep-uid"), rebuilt, final.range_result)
    assert again.best == final.best
    assert again.done


def test_trials_passing_a_rung_are_promoted_past_it() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01, 0.03]})
    sweep = Sweep(spec, "k")
    first = decide(sweep, [])
    assert all(launch.gated for launch in first.launches)
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs={25: 1.0 + i}, step=25)
        for i, r in enumerate(first.records)
    ]
    decision = decide(sweep, records)
    promoted = {(p.trial, p.rung) for p in decision.promotions}
    assert ("t000", 25) in promoted
    assert all(p.trial not in {s.trial for s in decision.stops} for p in decision.promotions)


def test_grid_trials_are_not_gated() -> None:
    decision = decide(Sweep(make_spec(search={"strategy": "grid"}), "k"), [])
    assert not any(launch.gated for launch in decision.launches)


def test_a_gated_trial_pauses_at_every_rung_below_its_full_budget() -> None:
    decision = decide(Sweep(make_spec(search={"strategy": "asha", "values": [0.01]}), "k"), [])
    (launch,) = decision.launches
    assert launch.rungs == (25, 75, 225, 300)
    assert launch.gates == (25, 75, 225)


def test_an_ungated_trial_pauses_nowhere() -> None:
    decision = decide(Sweep(make_spec(search={"strategy": "grid", "values": [0.01]}), "k"), [])
    assert decision.launches[0].gates == ()


@pytest.mark.parametrize(
    ("budget", "steps"),
    [
        ({"steps": 3000, "minSteps": 300}, 300),  # minSteps
        ({"steps": 3000, "minSteps": 40, "reductionFactor": 4}, 100),  # at least 100
        ({"steps": 270, "minSteps": 30, "reductionFactor": 3}, 90),  # one first comparison
        ({"steps": 60, "evalEvery": 20, "minSteps": 60}, 60),  # never past the budget
        ({"steps": 270, "minSteps": 30, "rangeTestSteps": 150}, 150),  # as asked
    ],
)
def test_the_range_test_steps_follow_the_budget(budget: dict[str, int], steps: int) -> None:
    assert strategies.range_test_steps(make_spec(budget=budget)) == steps


def test_the_first_launch_group_is_judged_as_a_cohort() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01, 0.03], "parallelism": 2})
    sweep = Sweep(spec, "k")
    first = decide(sweep, [])
    values = {"t000": 2.0, "t001": 1.0}  # the first-launched trial is the worse one
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs={25: values[r.id]}, step=25)
        for r in first.records
    ]
    decision = decide(sweep, records)
    assert [s.trial for s in decision.stops] == ["t000"]
    assert [p.trial for p in decision.promotions] == ["t001"]


def test_a_cohort_member_waits_for_the_rest_of_its_group() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01, 0.03], "parallelism": 2})
    sweep = Sweep(spec, "k")
    first = decide(sweep, [])
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs={25: 1.0} if r.id == "t000" else {}, step=25)
        for r in first.records
    ]
    decision = decide(sweep, records)
    assert decision.stops == ()
    assert decision.promotions == ()


def test_a_stopped_trial_keeps_no_rung_results_beyond_its_decision() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01, 0.03], "parallelism": 2})
    sweep = Sweep(spec, "k")
    first = decide(sweep, [])
    # t000 ran past its first rung (a pause timed out) before the decision came.
    rungs = {"t000": {25: 2.0, 75: 0.1}, "t001": {25: 1.0}}
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs=rungs[r.id], step=75) for r in first.records
    ]
    decision = decide(sweep, records)
    stopped = next(r for r in decision.records if r.id == "t000")
    assert stopped.phase is TrialPhase.STOPPED
    assert dict(stopped.rungs) == {25: 2.0}


@pytest.mark.parametrize("strategy", ["asha", "adaptive"])
def test_with_several_seeds_a_rate_is_kept_or_cut_as_a_whole(strategy: str) -> None:
    spec = make_spec(search={"strategy": strategy, "seeds": 3, "maxTrials": 100})
    decision = run(World(spec, bowl(0.03, cliff=10)))
    by_rate: dict[tuple[float, int], list[TrialRecord]] = {}
    for r in decision.records:
        if r.mode == "train":
            by_rate.setdefault((r.learning_rate, r.round), []).append(r)
    kept = [trials for trials in by_rate.values() if trials[0].phase is TrialPhase.SUCCEEDED]
    cut = [trials for trials in by_rate.values() if trials[0].phase is TrialPhase.STOPPED]
    assert kept, "some rates ran every seed fully"
    assert cut, "early stopping still cut some rates"
    for trials in by_rate.values():
        assert sorted(r.seed for r in trials) == [0, 1, 2]
        phases = {r.phase for r in trials}
        assert not {TrialPhase.SUCCEEDED, TrialPhase.STOPPED} <= phases, trials
    followers = [r for trials in cut for r in trials if r.seed > 0]
    assert all("this rate's seed-0 trial" in r.reason for r in followers)


def test_with_several_seeds_the_winner_is_the_best_mean_over_every_seed() -> None:
    spec = make_spec(search={"seeds": 3, "maxTrials": 100})
    decision = run(World(spec, bowl(0.03, cliff=10)))
    assert decision.best is not None
    finals = [
        r.rungs[300]
        for r in decision.records
        if r.learning_rate == decision.best.learning_rate and r.phase is TrialPhase.SUCCEEDED
    ]
    assert len(finals) == 3
    assert decision.best.score == pytest.approx(sum(finals) / 3)


def _seed_trial(index: int, seed: int, phase: TrialPhase, rungs: dict[int, float]) -> TrialRecord:
    return TrialRecord(
        f"t{index:03d}", 0.01, seed, phase=phase, queued=False, attempts=1, rungs=rungs
    )


def test_another_seed_waits_at_a_rung_until_its_rate_passes_it() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01], "seeds": 2})
    sweep = Sweep(spec, "k")
    lead = _seed_trial(0, 0, TrialPhase.RUNNING, {})
    other = _seed_trial(1, 1, TrialPhase.RUNNING, {25: 1.0})
    waiting = decide(sweep, [lead, other])
    assert waiting.promotions == ()
    assert waiting.stops == ()

    lead = replace(lead, rungs={25: 2.0})  # no peers at seed 0: the lead passes
    passed = decide(sweep, [lead, other])
    assert {(p.trial, p.rung) for p in passed.promotions} == {("t000", 25), ("t001", 25)}


def test_another_seed_that_finished_first_counts_only_once_its_rate_is_through() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01], "seeds": 2})
    sweep = Sweep(spec, "k")
    full = {25: 1.0, 75: 0.5, 225: 0.3, 300: 0.2}
    other = _seed_trial(1, 1, TrialPhase.SUCCEEDED, full)
    lead = _seed_trial(0, 0, TrialPhase.RUNNING, {25: 1.0, 75: 0.5})
    early = decide(sweep, [lead, other])
    assert not early.done
    assert early.best is None

    lead = replace(lead, phase=TrialPhase.SUCCEEDED, rungs=full)
    late = decide(sweep, [lead, other])
    assert late.done
    assert late.best is not None
    assert late.best.score == pytest.approx(0.2)


def test_another_seed_is_stopped_with_its_rate() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01, 0.03], "seeds": 2})
    sweep = Sweep(spec, "k")
    first = decide(sweep, [])
    # t000/t001: 0.01 at seeds 0 and 1; t002/t003: 0.03. The cohort (parallelism 3) holds
    # both leads, and 0.01's lead is the worse one at the first rung.
    values = {"t000": 2.0, "t001": 0.5, "t002": 1.0}
    records = [
        replace(r, phase=TrialPhase.RUNNING, rungs={25: values[r.id]}, step=25, queued=False)
        if r.id in values
        else r
        for r in first.records
    ]
    decision = decide(sweep, records)
    assert {s.trial for s in decision.stops} == {"t000", "t001"}
    follower = next(r for r in decision.records if r.id == "t001")
    assert follower.phase is TrialPhase.STOPPED
    assert "t000" in follower.reason


def test_another_seed_is_stopped_when_its_rate_diverges_at_seed_0() -> None:
    spec = make_spec(search={"strategy": "asha", "values": [0.01], "seeds": 2})
    sweep = Sweep(spec, "k")
    lead = replace(
        _seed_trial(0, 0, TrialPhase.RUNNING, {25: 1.0}),
        verdict=Verdict.DIVERGED,
        reason="loss became nan at step 30",
    )
    other = _seed_trial(1, 1, TrialPhase.RUNNING, {25: 1.0})
    decision = decide(sweep, [lead, other])
    assert {s.trial for s in decision.stops} == {"t000", "t001"}
    follower = next(r for r in decision.records if r.id == "t001")
    assert follower.phase is TrialPhase.STOPPED
    assert "diverged" in follower.reason


def _range_test(*metrics: dict[str, float]) -> TrialRecord:
    points = tuple(Point(step, m) for step, m in enumerate(metrics))
    return TrialRecord(
        "t000",
        1e-4,
        0,
        mode="range-test",
        phase=TrialPhase.RUNNING,
        attempts=1,
        queued=False,
        points=points,
    )


def test_a_range_test_reporting_other_metrics_than_the_objective_fails_the_sweep() -> None:
    records = [_range_test({"train_loss": 1.0, "val_acc": 0.5}, {"train_loss": 0.9})]
    decision = decide(Sweep(make_spec(), "k"), records)
    assert decision.done
    assert decision.broken
    assert decision.message == (
        "the objective metric 'val_loss' is not reported: the range test t000 reported "
        "train_loss, val_acc at its evaluations; set spec.objective.metric to the name the "
        "trainer reports"
    )


def test_a_range_test_reporting_only_its_own_losses_says_nothing_of_the_objective() -> None:
    step = {"train_loss": 1.0}
    decision = decide(Sweep(make_spec(), "k"), [_range_test(step, step, step, step)])
    assert not decision.done


def test_a_range_tests_newest_evaluation_alone_says_nothing_of_the_objective() -> None:
    decision = decide(Sweep(make_spec(), "k"), [_range_test({"val_acc": 0.5})])
    assert not decision.done


def test_a_winner_whose_loss_barely_moved_is_reported_with_a_caveat() -> None:
    # The tiniest rate wins without having trained: every other one did worse.
    spec = make_spec(search={"strategy": "grid", "values": [1e-6, 0.1, 1.0]})
    flat = replace(_finished(0, 1e-6, 2.30), verdict=Verdict.PLATEAU, reason="loss flat")
    records = [flat, _finished(1, 0.1, 2.5), _finished(2, 1.0, 9.0)]
    decision = decide(Sweep(spec, "k"), records)
    assert decision.best is not None
    assert decision.best.learning_rate == 1e-6
    assert decision.caveat.startswith("the best trial's loss barely moved (loss flat):")
    assert decision.at_edge.startswith("the best rate is the lowest tried")
