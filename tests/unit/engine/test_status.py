"""The status a decision makes, with its conditions, the same in both runtimes.

Covers: a running sweep is Ready=False TrialsRunning; one whose trials cannot be scheduled
says Unschedulable in Ready and leads its message with the first trial's why; a succeeded one
is Complete and Ready with BestRateFound and Bracketed by where its winner sits; a failed one
is Failed with NoTrialCompleted; a condition that does not flip keeps its transition time;
the start time is the first summary's.
"""

from __future__ import annotations

from lrsweep.api import LRSweepStatus
from lrsweep.engine.status import summarize
from lrsweep.engine.strategies import Best
from lrsweep.engine.sweep import Decision


def decision(done: bool = False, best: Best | None = None, at_edge: str = "") -> Decision:
    return Decision((), (), (), (), done, best, None, "m", caveat=at_edge, at_edge=at_edge)


def reasons(status: LRSweepStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_a_running_sweep_is_not_ready_with_trials_running() -> None:
    status = summarize(decision(), LRSweepStatus(), now="t1")
    assert reasons(status) == {"Ready": ("False", "TrialsRunning")}


def test_a_sweep_whose_trials_cannot_be_scheduled_says_so_in_ready_and_its_message() -> None:
    status = summarize(decision(), LRSweepStatus(), ["t001: no GPU"], now="t1")
    assert reasons(status)["Ready"] == ("False", "Unschedulable")
    assert reasons(status)["TrialsSchedulable"] == ("False", "Unschedulable")
    assert status.message == "1 trial(s) cannot start (t001: no GPU); m"


def test_a_succeeded_sweep_is_complete_ready_and_bracketed_by_where_its_winner_sits() -> None:
    inside = summarize(decision(True, Best(0.1, 0.2, "t000")), LRSweepStatus(), now="t1")
    assert reasons(inside) == {
        "Complete": ("True", "BestRateFound"),
        "Ready": ("True", "BestRateFound"),
        "Bracketed": ("True", "BestRateInside"),
    }
    edge = summarize(decision(True, Best(0.1, 0.2, "t000"), "lowest"), LRSweepStatus(), now="t1")
    assert reasons(edge)["Bracketed"] == ("False", "BestRateAtEdge")
    assert edge.completionTime == "t1"


def test_a_failed_sweep_is_failed_with_no_trial_completed() -> None:
    status = summarize(decision(True), LRSweepStatus(), now="t1")
    assert reasons(status)["Failed"] == ("True", "NoTrialCompleted")
    assert reasons(status)["Ready"] == ("False", "NoTrialCompleted")


def test_a_condition_that_does_not_flip_keeps_its_transition_time_and_the_start_time() -> None:
    first = summarize(decision(), LRSweepStatus(), now="t1")
    later = summarize(decision(), first, now="t2")
    assert later.startTime == "t1"
    assert [c.lastTransitionTime for c in later.conditions] == ["t1"]
