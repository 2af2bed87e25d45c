"""The deterministic ASHA rule.

Covers: rung placement on the evaluation grid; the cutoff keeps the top 1/eta; a trial with
no earlier results continues; waiting on earlier trials not yet at a rung; earlier trials
that ended below a rung are not waited for; maximisation flips the order; quantile math;
finalists pass the last rung (only the last) while fewer peers than that beat them.
"""

from __future__ import annotations

from lrsweep.api import Budget, Goal, TrialPhase
from lrsweep.engine.asha import Rule, decide, quantile, rung_steps
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


def test_finalists_do_not_change_earlier_rungs() -> None:
    earlier = [rec("t0", {50: 0.1}), rec("t1", {50: 0.2}), rec("t2", {50: 0.3})]
    decision = decide(
        rec("t3", {50: 0.25}), earlier, [50, 100], eta=3, goal=Goal.MINIMIZE, finalists=3
    )
    assert decision.rule is Rule.STOP
    assert decision.rung == 50
