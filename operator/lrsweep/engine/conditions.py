"""Status conditions, Kubernetes style: set one, and learn whether anything changed.

`lastTransitionTime` moves only when a condition's status flips; setting a condition to what
it already says changes nothing, so a reconcile that learns nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrsweep.api import Condition

# Condition types.
READY = "Ready"
COMPLETE = "Complete"
FAILED = "Failed"
SCHEDULABLE = "TrialsSchedulable"
BRACKETED = "Bracketed"  # the winner has a tried rate on either side

# Reasons (terminal ones first).
GOAL_REACHED = "BestRateFound"
NO_RESULT = "NoTrialCompleted"
INVALID_SPEC = "InvalidSpec"
RUNNING = "TrialsRunning"
UNSCHEDULABLE = "Unschedulable"
# TrialsSchedulable=False when pods are scheduled but a container cannot start
# (`runtime.observe.observe_stuck_pod`); pods that cannot be scheduled say UNSCHEDULABLE.
CONTAINERS_CANNOT_START = "ContainersCannotStart"
INTERRUPTED = "Interrupted"  # `lrsweep run` stopped by Ctrl-C or SIGTERM: a partial result
SCHEDULED = "Scheduled"
INSIDE = "BestRateInside"
AT_EDGE = "BestRateAtEdge"


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> tuple[list[Condition], bool]:
    """Return the conditions with `type_` set, and whether that changed anything."""
    value = "True" if status else "False"
    out = list(conditions)
    for i, c in enumerate(out):
        if c.type != type_:
            continue
        if (c.status, c.reason, c.message, c.observedGeneration) == (
            value,
            reason,
            message,
            generation,
        ):
            return out, False
        moved = now if c.status != value else c.lastTransitionTime
        out[i] = Condition(
            type=type_,
            status=value,
            reason=reason,
            message=message,
            lastTransitionTime=moved,
            observedGeneration=generation,
        )
        return out, True
    out.append(
        Condition(
            type=type_,
            status=value,
            reason=reason,
            message=message,
            lastTransitionTime=now,
            observedGeneration=generation,
        )
    )
    return out, True
