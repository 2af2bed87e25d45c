"""set_condition, the Kubernetes way.

Covers: adding a condition; setting the same values changes nothing; a message change keeps
lastTransitionTime; a status flip moves it; other conditions are untouched.
"""

from __future__ import annotations

from lrsweep.engine.conditions import set_condition


def test_a_new_condition_is_added_with_the_time() -> None:
    conds, changed = set_condition([], "Ready", False, "TrialsRunning", "m", now="t1", generation=1)
    assert changed
    assert conds[0].lastTransitionTime == "t1"
    assert conds[0].status == "False"


def test_setting_the_same_condition_changes_nothing() -> None:
    conds, _ = set_condition([], "Ready", False, "TrialsRunning", "m", now="t1", generation=1)
    again, changed = set_condition(
        conds, "Ready", False, "TrialsRunning", "m", now="t2", generation=1
    )
    assert not changed
    assert again == conds


def test_a_new_message_keeps_the_transition_time() -> None:
    conds, _ = set_condition([], "Ready", False, "TrialsRunning", "m", now="t1", generation=1)
    conds, changed = set_condition(
        conds, "Ready", False, "TrialsRunning", "n", now="t2", generation=1
    )
    assert changed
    assert conds[0].lastTransitionTime == "t1"
    assert conds[0].message == "n"


def test_a_status_flip_moves_the_transition_time() -> None:
    conds, _ = set_condition([], "Ready", False, "TrialsRunning", "m", now="t1", generation=1)
    conds, _ = set_condition(conds, "Ready", True, "BestRateFound", "m", now="t2", generation=1)
    assert conds[0].lastTransitionTime == "t2"
    assert conds[0].status == "True"


def test_other_conditions_are_untouched() -> None:
    conds, _ = set_condition([], "Ready", False, "R", "", now="t1", generation=1)
    conds, _ = set_condition(conds, "Complete", True, "C", "", now="t2", generation=1)
    assert [c.type for c in conds] == ["Ready", "Complete"]
