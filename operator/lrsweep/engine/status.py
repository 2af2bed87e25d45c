"""The status a sweep's decision makes: phase and results (`Decision.status`), with the
conditions and timestamps both runtimes write (`summarize`). Pure: the caller passes the
time and what its cluster says about pods that cannot start."""

from __future__ import annotations

from collections.abc import Sequence

from lrsweep.api import LRSweepStatus, Phase
from lrsweep.engine import conditions as cond
from lrsweep.engine.sweep import Decision


def summarize(
    decision: Decision,
    previous: LRSweepStatus,
    unschedulable: Sequence[str] = (),
    not_starting: Sequence[str] = (),
    *,
    now: str,
    generation: int | None = None,
) -> LRSweepStatus:
    """The status to write after `previous`: `decision`'s summary, with conditions (whose
    transition times move only when they flip) and timestamps. `unschedulable` and
    `not_starting`: why trials' pods cannot be scheduled, or their containers cannot start
    ("t001: ..."; a cluster's to say, none locally)."""
    status = decision.status()
    status.startTime = previous.startTime or now
    status.observedGeneration = generation
    conds = previous.conditions
    if unschedulable or not_starting:
        conds, _ = cond.set_condition(
            conds,
            cond.SCHEDULABLE,
            False,
            cond.UNSCHEDULABLE if unschedulable else cond.CONTAINERS_CANNOT_START,
            "; ".join([*unschedulable, *not_starting])[:1000],
            now=now,
            generation=generation,
        )
    elif any(c.type == cond.SCHEDULABLE for c in conds):
        conds, _ = cond.set_condition(
            conds, cond.SCHEDULABLE, True, cond.SCHEDULED, "", now=now, generation=generation
        )
    # (type, status, reason) to set: Complete or Failed once the sweep ends, and Ready.
    updates: list[tuple[str, bool, str]]
    if status.phase is Phase.SUCCEEDED:
        updates = [(cond.COMPLETE, True, cond.GOAL_REACHED), (cond.READY, True, cond.GOAL_REACHED)]
        conds, _ = cond.set_condition(
            conds,
            cond.BRACKETED,
            not decision.at_edge,
            cond.AT_EDGE if decision.at_edge else cond.INSIDE,
            decision.at_edge,
            now=now,
            generation=generation,
        )
    elif status.phase is Phase.FAILED:
        updates = [(cond.FAILED, True, cond.NO_RESULT), (cond.READY, False, cond.NO_RESULT)]
    elif unschedulable or not_starting:
        # Running, but not all of it: the Reason column and the message say why at once.
        stuck = [*unschedulable, *not_starting]
        status.message = f"{len(stuck)} trial(s) cannot start ({stuck[0][:200]}); {status.message}"
        reason = cond.UNSCHEDULABLE if unschedulable else cond.CONTAINERS_CANNOT_START
        updates = [(cond.READY, False, reason)]
    else:
        updates = [(cond.READY, False, cond.RUNNING)]
    if status.phase in (Phase.SUCCEEDED, Phase.FAILED):
        status.completionTime = now
    for kind, value, reason in updates:
        conds, _ = cond.set_condition(
            conds, kind, value, reason, status.message, now=now, generation=generation
        )
    status.conditions = conds
    return status
