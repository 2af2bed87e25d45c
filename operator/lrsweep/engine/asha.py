"""Asynchronous successive halving (ASHA), made deterministic.

At each rung a trial continues only if its objective is in the top 1/reductionFactor of
the values recorded at that rung (Li et al., "A System for Massively Parallel Hyperparameter
Tuning"; the cutoff is the (1 - 1/eta) quantile of the recorded values, as in Ray Tune).

Classic ASHA compares against whatever happened to be recorded when the trial arrived, so the
outcome depends on timing. Here a trial is compared against fixed peers: the trials launched
*before* it, and, for the first launch group (as many trials as run at once), the rest of
that group. It waits (paused at the rung, see the contract's rung gate) until each peer has
either recorded a value at the rung or ended below it. The decision is then a function of
the curves alone: a restarted operator, or the local runner, reaches the same decisions and
the same winner. Judging the first group as a cohort keeps classic ASHA's weak spot, the
first arrivals passing every rung unopposed, from costing a full run each.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from lrsweep.api import Budget, Goal
from lrsweep.engine.trials import TrialRecord


def rung_steps(budget: Budget) -> list[int]:
    """Steps at which trials are compared: minSteps * eta^k below the full budget.

    Each is rounded to a multiple of evalEvery, so that every rung has an evaluation.
    """
    rungs: list[int] = []
    at = float(budget.minSteps)
    while at < budget.steps:
        step = max(budget.evalEvery, round(at / budget.evalEvery) * budget.evalEvery)
        if step < budget.steps and step not in rungs:
            rungs.append(step)
        at *= budget.reductionFactor
    return rungs


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of a non-empty sequence."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class Rule(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"
    WAIT = "wait"  # a peer has not reached this rung yet


@dataclass(frozen=True)
class RungDecision:
    rule: Rule
    rung: int | None = None
    reason: str = ""


def decide(
    trial: TrialRecord,
    peers: Sequence[TrialRecord],
    rungs: Sequence[int],
    *,
    eta: int,
    goal: Goal,
    finalists: int = 1,
) -> RungDecision:
    """Walk the rungs `trial` has reached; the first one it fails stops it.

    At the last rung a trial also goes on while fewer than `finalists` of its peers recorded
    a better value there: near the optimum, full-budget scores of neighbouring rates differ
    by less than their noise, so the winner is picked among several full runs.
    """
    sign = 1.0 if goal is Goal.MINIMIZE else -1.0
    for rung in rungs:
        value = trial.rungs.get(rung)
        if value is None:
            return RungDecision(Rule.CONTINUE)
        recorded: list[float] = []
        for other in peers:
            if rung in other.rungs:
                recorded.append(sign * other.rungs[rung])
            elif not other.terminal:
                return RungDecision(Rule.WAIT, rung, f"waiting for {other.id} to reach {rung}")
        if not recorded:
            continue
        # Keep the top 1/eta: the cutoff is the (1/eta) quantile of signed values.
        cutoff = quantile(recorded, 1.0 / eta)
        finalist = rung == rungs[-1] and sum(v < sign * value for v in recorded) < finalists
        if sign * value > cutoff and not finalist:
            return RungDecision(
                Rule.STOP,
                rung,
                f"stopped at step {rung}: objective {value:.4g} is not in the top 1/{eta} of "
                f"{len(recorded) + 1} trials at that rung (cutoff {sign * cutoff:.4g})",
            )
    return RungDecision(Rule.CONTINUE)
