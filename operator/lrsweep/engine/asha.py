"""Asynchronous successive halving (ASHA), made deterministic.

At each rung a trial continues only if its objective is in the top 1/reductionFactor of
the values recorded at that rung (Li et al., "A System for Massively Parallel Hyperparameter
Tuning"; the cutoff is the (1 - 1/eta) quantile of the recorded values, as in Ray Tune).

Classic ASHA compares against whatever happened to be recorded when the trial arrived, so the
outcome depends on timing. Here a trial is compared against fixed peers: the trials launched
*before* it, and, within the first cohort (the first launch group, or adaptive's whole first
round), the rest of that cohort. It waits (paused at the rung, see the contract's rung gate)
while the peers that have not reported there could still change the outcome, and is decided
as soon as they cannot. The decision is then a function of the curves alone: a restarted
operator, or the local runner, reaches the same decisions and the same winner. Judging a
cohort together keeps classic ASHA's weak spot, the first arrivals passing every rung
unopposed, from costing a full run each.
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
    """Linear-interpolated quantile (numpy's default method) of a non-empty sequence.

    Infinite values are allowed: between an infinite and a finite value the quantile is the
    infinite one (the limit as that value grows without bound).
    """
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    low, high = ordered[lo], ordered[hi]
    if pos == lo or low == high:
        return low
    if math.isinf(low):
        return low
    if math.isinf(high):
        return high
    return low + (high - low) * (pos - lo)


def most_kept(n: int, eta: int, finalists: int = 0) -> int:
    """The most of `n` trials compared at one rung that `decide` lets go on.

    A trial passes the top-1/eta cutoff only with at most ceil((n - 2) / eta) peers ahead
    of it, or as one of `finalists`; ties are broken by launch order, so the bound holds for
    any values.
    """
    if n <= 1:
        return n
    return max(finalists, math.ceil((n - 2) / eta) + 1)


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

    At every rung a trial also goes on while fewer than `finalists` of its peers recorded a
    better value there, so that at least that many reach the full budget: near the optimum,
    full-budget scores of neighbouring rates differ by less than their noise, so the winner
    is picked among several full runs. (With finalists=1, ASHA's own rule: the best so far
    is always in its top 1/eta.)
    """
    sign = 1.0 if goal is Goal.MINIMIZE else -1.0
    for rung in rungs:
        value = trial.rungs.get(rung)
        if value is None:
            return RungDecision(Rule.CONTINUE)
        recorded: list[_Peer] = []
        on_the_way: list[TrialRecord] = []  # peers still running (or queued) below this rung
        for other in peers:
            if rung in other.rungs:
                recorded.append(_Peer(sign * other.rungs[rung], other.id < trial.id))
            elif not other.terminal:
                on_the_way.append(other)
        if not recorded and not on_the_way:
            continue
        mine = sign * value
        # Settled early when the peers on their way cannot change the outcome: it fails even
        # if they all record worse values, or passes even if they all record better ones.
        best_case = [*recorded, *(_Peer(math.inf, False) for _ in on_the_way)]
        if not _passes(mine, best_case, eta, finalists):
            cutoff = quantile([p.value for p in best_case], 1.0 / eta)
            why = (
                f"cutoff {sign * cutoff:.4g}"
                if mine > cutoff
                else "tied with trials launched before it, which go first"
            )
            return RungDecision(
                Rule.STOP,
                rung,
                f"stopped at step {rung}: objective {value:.4g} is not in the top 1/{eta} of "
                f"{len(best_case) + 1} trials at that rung ({why})",
            )
        worst_case = [*recorded, *(_Peer(-math.inf, True) for _ in on_the_way)]
        if not _passes(mine, worst_case, eta, finalists):
            return RungDecision(Rule.WAIT, rung, f"waiting for {on_the_way[0].id} to reach {rung}")
    return RungDecision(Rule.CONTINUE)


@dataclass(frozen=True)
class _Peer:
    value: float  # signed: lower is better
    earlier: bool  # launched before the trial judged (wins a tie)


def _passes(mine: float, peers: Sequence[_Peer], eta: int, finalists: int) -> bool:
    """The rule at one rung, given every peer's value there.

    In the top 1/eta (ASHA's cutoff), or one of the `finalists`; and, so that ties cannot
    keep more than `most_kept` trials, fewer than that many peers ahead of it (a tie goes to
    the trial launched first).
    """
    cutoff = quantile([p.value for p in peers], 1.0 / eta)
    better = sum(p.value < mine for p in peers)
    ahead = better + sum(p.value == mine and p.earlier for p in peers)
    kept = mine <= cutoff or better < finalists
    return kept and ahead < most_kept(len(peers) + 1, eta, finalists)
