"""The deterministic ASHA rule.

Covers: rung placement on the evaluation grid; the cutoff keeps the top 1/eta; a trial with
no earlier results continues; waiting on earlier trials not yet at a rung; earlier trials
that ended below a rung are not waited for; maximisation flips the order; quantile math
(infinite values included); finalists pass every rung while fewer peers than that beat
them, so that they all reach the full budget. A trial is settled before its peers report
when they cannot change the outcome, and that early decision is always the one full
information gives; ties go to the trial launched first, so no more than `most_kept` trials
ever pass a rung.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from lrsweep.api import Budget, Goal, TrialPhase
from lrsweep.engine.asha import Rule, decide, most_kept, quantile, rung_steps
from lrsweep.engine.trials import TrialRecord


def rec(trial: str, rungs: dict[int, float], phase: TrialPhase = TrialPhase.RUNNING) -> TrialRecord:
    return TrialRecord(trial, 0.01, 0, phase=phase, rungs=rungs, queued=False, attempts=1)


def test_rungs_grow_by_the_reduction_factor_on_the_evaluation_grid() -> None:
    budget = Budget(steps=3000, evalEvery=100, minSteps=300, reductionFactor=3)
    assert rung_steps(budget) == [300, 900, 2700]
    odd = Budget(steps=300, evalEvery=20, minSteps=25, reductionFactor=3)
    assert rung_steps(odd) == [20, 80, 220]


def test_quantile_interpolates_like_numpy() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 1 / 3) == 2.0
    assert quantile([5.0], 0.5) == 5.0


def test_first_trial_at_a_rung_continues() -> None:
    assert decide(rec("t0", {100: 0.5}), [], [100], eta=3, goal=Goal.MINIMIZE).rule is Rule.CONTINUE


def test_trial_outside_the_top_third_is_stopped_with_a_reason() -> None:
    earlier = [rec("t0", {100: 0.1}), rec("t1", {100: 0.2}), rec("t2", {100: 0.3})]
    decision = decide(rec("t3", {100: 0.25}), earlier, [100], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.STOP
    assert decision.rung == 100
    assert "not in the top 1/3" in decision.reason


def test_trial_inside_the_top_third_continues() -> None:
    earlier = [rec("t0", {100: 0.1}), rec("t1", {100: 0.2}), rec("t2", {100: 0.3})]
    assert decide(rec("t3", {100: 0.12}), earlier, [100], eta=3, goal=Goal.MINIMIZE).rule is (
        Rule.CONTINUE
    )


def test_maximising_keeps_the_highest_values() -> None:
    earlier = [rec("t0", {100: 0.9}), rec("t1", {100: 0.5}), rec("t2", {100: 0.4})]
    assert decide(rec("t3", {100: 0.95}), earlier, [100], eta=3, goal=Goal.MAXIMIZE).rule is (
        Rule.CONTINUE
    )
    assert decide(rec("t3", {100: 0.6}), earlier, [100], eta=3, goal=Goal.MAXIMIZE).rule is (
        Rule.STOP
    )


def test_waits_for_an_earlier_trial_still_running_below_the_rung() -> None:
    decision = decide(rec("t1", {100: 0.5}), [rec("t0", {})], [100], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.WAIT


def test_does_not_wait_for_an_earlier_trial_that_ended_below_the_rung() -> None:
    diverged = rec("t0", {}, phase=TrialPhase.DIVERGED)
    decision = decide(rec("t1", {100: 0.5}), [diverged], [100], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.CONTINUE


def test_a_finalist_passes_the_last_rung_outside_the_top_third() -> None:
    earlier = [rec("t0", {100: 0.1}), rec("t1", {100: 0.2}), rec("t2", {100: 0.3})]
    trial = rec("t3", {100: 0.25})
    assert decide(trial, earlier, [100], eta=3, goal=Goal.MINIMIZE, finalists=3).rule is (
        Rule.CONTINUE
    )
    assert decide(trial, earlier, [100], eta=3, goal=Goal.MINIMIZE, finalists=2).rule is (Rule.STOP)


def test_a_finalist_passes_an_earlier_rung_too() -> None:
    # Cut at step 50, it could never be one of the 3 trials trained to the full budget.
    earlier = [rec("t0", {50: 0.1}), rec("t1", {50: 0.2}), rec("t2", {50: 0.3})]
    decision = decide(
        rec("t3", {50: 0.25}), earlier, [50, 100], eta=3, goal=Goal.MINIMIZE, finalists=3
    )
    assert decision.rule is Rule.CONTINUE


def test_a_trial_with_finalists_enough_ahead_of_it_is_cut_at_an_earlier_rung() -> None:
    earlier = [rec("t0", {50: 0.1}), rec("t1", {50: 0.2}), rec("t2", {50: 0.3})]
    decision = decide(
        rec("t3", {50: 0.35}), earlier, [50, 100], eta=3, goal=Goal.MINIMIZE, finalists=3
    )
    assert decision.rule is Rule.STOP
    assert decision.rung == 50


def test_quantile_between_a_finite_and_an_infinite_value_is_the_infinite_one() -> None:
    assert quantile([1.0, math.inf], 0.5) == math.inf
    assert quantile([-math.inf, 1.0], 0.5) == -math.inf
    assert quantile([1.0, 2.0, math.inf], 0.5) == 2.0


def test_a_trial_that_fails_whatever_its_slower_peers_record_stops_at_once() -> None:
    peers = [rec("t0", {100: 0.1}), rec("t1", {100: 0.2}), rec("t3", {})]
    decision = decide(rec("t2", {100: 0.5}), peers, [100], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.STOP
    assert "of 4 trials" in decision.reason


def test_a_trial_that_passes_whatever_its_slower_peers_record_goes_on_at_once() -> None:
    recorded = [rec(f"t{i}", {100: 0.1 * (i + 1)}) for i in range(5)]
    trial = rec("t5", {100: 0.05})
    decision = decide(trial, [*recorded, rec("t6", {})], [100, 300], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.CONTINUE


def test_a_trial_waits_while_its_slower_peers_could_still_change_its_outcome() -> None:
    peers = [rec("t0", {100: 0.1}), rec("t1", {100: 0.2}), rec("t3", {})]
    decision = decide(rec("t2", {100: 0.15}), peers, [100], eta=3, goal=Goal.MINIMIZE)
    assert decision.rule is Rule.WAIT
    assert "t3" in decision.reason


def _passing(
    trials: list[TrialRecord], rungs: list[int], *, eta: int, finalists: int
) -> list[TrialRecord]:
    """The trials that pass, each judged against all the others (one cohort)."""
    return [
        t
        for t in trials
        if decide(
            t,
            [p for p in trials if p is not t],
            rungs,
            eta=eta,
            goal=Goal.MINIMIZE,
            finalists=finalists,
        ).rule
        is Rule.CONTINUE
    ]


def test_tied_trials_pass_in_launch_order_up_to_the_most_kept() -> None:
    trials = [rec(f"t{i}", {100: 1.0}) for i in range(5)]
    passed = _passing(trials, [100, 300], eta=3, finalists=1)
    assert [t.id for t in passed] == ["t0", "t1"]
    assert len(passed) == most_kept(5, 3)
    third = decide(trials[2], [trials[0], trials[1], *trials[3:]], [100], eta=3, goal=Goal.MINIMIZE)
    assert "tied with trials launched before it" in third.reason


def test_most_kept_grows_with_the_trials_compared_and_the_finalists() -> None:
    assert most_kept(1, 3) == 1
    assert most_kept(4, 3) == 2
    assert most_kept(6, 3) == 3
    assert most_kept(6, 3, finalists=4) == 4


# Few distinct values, so that ties are common.
_values = st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.8]), min_size=1, max_size=9)


@given(values=_values, eta=st.sampled_from([2, 3, 4]), finalists=st.integers(0, 3))
def test_no_more_than_most_kept_trials_pass_a_rung(
    values: list[float], eta: int, finalists: int
) -> None:
    trials = [rec(f"t{i}", {100: v}) for i, v in enumerate(values)]
    passed = _passing(trials, [100], eta=eta, finalists=finalists)
    assert 1 <= len(passed) <= most_kept(len(values), eta, finalists)


@given(
    values=_values,
    mine=st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.8]),
    on_the_way=st.lists(st.booleans(), min_size=9, max_size=9),
    ended_below=st.lists(st.booleans(), min_size=9, max_size=9),
    finalists=st.integers(1, 3),
)
def test_a_decision_taken_before_every_peer_reported_is_the_one_full_information_gives(
    values: list[float],
    mine: float,
    on_the_way: list[bool],
    ended_below: list[bool],
    finalists: int,
) -> None:
    trial = rec("t4", {100: mine})
    ids = [f"t{i}" for i in range(10) if i != 4]

    def judge(peers: list[TrialRecord]) -> Rule:
        return decide(trial, peers, [100], eta=3, goal=Goal.MINIMIZE, finalists=finalists).rule

    partial = [
        rec(i, {}) if pending else rec(i, {100: v})
        for i, v, pending in zip(ids, values, on_the_way, strict=False)
    ]
    early = judge(partial)
    # Each peer on its way then either records its value or ends below the rung.
    full = [
        p if not pending else rec(i, {}, phase=TrialPhase.STOPPED) if below else rec(i, {100: v})
        for p, i, v, pending, below in zip(
            partial, ids, values, on_the_way, ended_below, strict=False
        )
    ]
    final = judge(full)
    assert final is not Rule.WAIT
    if early is not Rule.WAIT:
        assert early is final
