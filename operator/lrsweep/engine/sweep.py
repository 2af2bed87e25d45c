"""The sweep state machine: (spec, trial records) -> actions and a status summary.

Both runtimes drive a sweep the same way:

    records = observe(...)                      # fold what processes/pods report
    decision = decide(sweep, records, range)    # pure
    stop decision.stops; launch decision.launches; write decision.status()

`decide` is deterministic: the same spec and records give the same decision.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lrsweep.api import (
    Goal,
    LRSweepSpec,
    LRSweepStatus,
    Phase,
    RangeTestStatus,
    TrialPhase,
    Verdict,
)
from lrsweep.engine import asha, strategies
from lrsweep.engine.rangetest import RangeTestResult, analyse
from lrsweep.engine.trials import (
    Mode,
    Observation,
    TrialRecord,
    observe,
    park,
    resume,
    to_status,
)


@dataclass(frozen=True)
class Sweep:
    spec: LRSweepSpec
    key: str  # seeds random choices: the sweep's uid (locally, its name)

    @property
    def rungs(self) -> list[int]:
        return strategies.rungs(self.spec)

    @property
    def rung_steps(self) -> list[int]:
        """Every step whose evaluation the engine keeps: the rungs and the full budget."""
        return [*self.rungs, self.spec.budget.steps]

    @property
    def scored_steps(self) -> list[int]:
        """Steps whose evaluation the sweep needs the objective at."""
        if strategies.stops_early(self.spec.search.strategy):
            return self.rung_steps
        return [self.spec.budget.steps]


@dataclass(frozen=True)
class Launch:
    """Start one attempt of a trial."""

    trial: str
    attempt: int
    learning_rate: float
    seed: int
    mode: Mode
    steps: int
    eval_every: int
    rungs: tuple[int, ...]
    range_start: float | None = None
    range_end: float | None = None
    # Pause at each rung until promoted (early-stopping strategies only).
    gated: bool = False
    # The metric compared at the rungs: an evaluation without it has nothing to wait for.
    objective: str = ""
    # The trial's retries are used up: no attempt follows if this one fails.
    final: bool = False

    @property
    def gates(self) -> tuple[int, ...]:
        """The steps it pauses at until promoted: every rung below the full budget."""
        return tuple(step for step in self.rungs if step < self.steps) if self.gated else ()


@dataclass(frozen=True)
class Stop:
    trial: str
    reason: str


@dataclass(frozen=True)
class Promote:
    """Let a trial paused at `rung` go on (idempotent: runtimes may send it repeatedly)."""

    trial: str
    attempt: int
    rung: int


@dataclass(frozen=True)
class Decision:
    records: tuple[TrialRecord, ...]
    launches: tuple[Launch, ...]
    stops: tuple[Stop, ...]
    promotions: tuple[Promote, ...]
    done: bool
    best: strategies.Best | None
    range_result: RangeTestResult | None
    message: str
    # The trials cannot run at all (every attempt failed before a first step) or cannot be
    # scored (they do not report the objective): the sweep gives up instead of burning the
    # whole budget on a broken template or spec.
    broken: bool = False
    # Why the winner may not be the best rate to be had (strategies.flat_note, edge_note),
    # or "".
    caveat: str = ""
    # The winner is the lowest or highest rate tried (strategies.edge_note), or "".
    at_edge: str = ""

    def status(self) -> LRSweepStatus:
        """The status summary (no conditions or timestamps: the caller owns those)."""
        scores = {r.id: _score(r) for r in self.records}
        if not self.done:
            phase = Phase.RUNNING if self.records else Phase.PENDING
        else:
            phase = Phase.SUCCEEDED if self.best is not None else Phase.FAILED
        rt = self.range_result
        return LRSweepStatus(
            phase=phase,
            bestLearningRate=self.best.learning_rate if self.best else None,
            bestTrial=self.best.trial if self.best else None,
            bestScore=self.best.score if self.best else None,
            trialCount=len(self.records),
            trials={r.id: to_status(r, scores[r.id]) for r in self.records},
            rangeTest=RangeTestStatus(
                steepest=rt.steepest,
                valley=rt.valley,
                minimum=rt.minimum,
                divergence=rt.divergence,
                ceiling=rt.ceiling,
                descent=rt.descent,
            )
            if rt
            else None,
            message=self.message,
        )


def _score(record: TrialRecord) -> float | None:
    """The objective at the furthest rung the trial reached."""
    if not record.rungs:
        return None
    return record.rungs[max(record.rungs)]


def trial_id(index: int) -> str:
    return f"t{index:03d}"


def update(sweep: Sweep, records: Sequence[TrialRecord], obs: Observation) -> list[TrialRecord]:
    """Fold one observation into the records (unknown trials are ignored)."""
    spec = sweep.spec
    return [
        observe(
            r,
            obs,
            metric=spec.objective.metric,
            rung_steps=sweep.rung_steps,
            full_steps=spec.budget.steps if r.mode == "train" else 0,
            max_retries=spec.trial.maxRetries,
        )
        if r.id == obs.trial
        else r
        for r in records
    ]


def range_result_of(
    records: Sequence[TrialRecord], known: RangeTestResult | None
) -> RangeTestResult | None:
    if known is not None:
        return known
    for r in records:
        if r.mode == "range-test" and r.phase is TrialPhase.SUCCEEDED and r.range_curve:
            lrs = [lr for lr, _ in r.range_curve]
            losses = [loss for _, loss in r.range_curve]
            try:
                return analyse(lrs, losses)
            except ValueError:
                return None  # an unusable curve: adaptive then searches the whole range
    return None


def _early_stops(
    sweep: Sweep, records: list[TrialRecord], range_result: RangeTestResult | None = None
) -> tuple[list[TrialRecord], list[Stop], list[Promote], set[str]]:
    """Apply early stopping: stops, promotions past rungs, and finished-but-undecided trials.

    With several seeds per rate, a rate's seed-0 trial (its lead) is what early stopping
    judges, against the other rates' leads; the rate's other seeds follow it: promoted past
    the rungs it passed, stopped when it stops. So a rate is kept or cut as a whole (its
    seeds never compete with each other), and no trial waits for one launched after it.
    """
    spec = sweep.spec
    stops: list[Stop] = []
    promotions: list[Promote] = []
    undecided: set[str] = set()
    out: list[TrialRecord] = []
    earlier: list[TrialRecord] = []
    use_asha = strategies.stops_early(spec.search.strategy)
    rungs = sweep.rungs
    finalists = strategies.finalists(spec, range_result)
    train = [r for r in records if r.mode == "train"]
    # Each lead (seed-0 trial) by rate and round: as decided, the rungs it passed, and
    # whether it finished with every comparison behind it.
    leads: dict[tuple[float, int], tuple[TrialRecord, list[int], bool]] = {}
    # The cohort (the first launch group, or adaptive's whole first round: see
    # strategies.cohort) is judged together, each against all the others; every later
    # trial against all trials launched before it.
    cohort = strategies.cohort(spec)
    for r in records:
        if r.mode != "train":
            out.append(r)
            continue
        index = len(earlier)
        lead = leads.get((r.learning_rate, r.round)) if r.seed > 0 else None
        updated = r
        passed: list[int] = []
        if r.phase is TrialPhase.RUNNING and r.verdict is Verdict.DIVERGED:
            updated = replace(r, phase=TrialPhase.DIVERGED)
            stops.append(Stop(r.id, r.reason))
        elif use_asha and lead is not None:
            updated = _follow(r, *lead, stops, promotions, undecided)
        elif use_asha and r.phase in (TrialPhase.RUNNING, TrialPhase.SUCCEEDED):
            peers = [p for p in (*earlier, *train[index + 1 : cohort]) if p.seed == 0]
            rule = asha.decide(
                r,
                peers,
                rungs,
                eta=spec.budget.reductionFactor,
                goal=spec.objective.goal,
                finalists=finalists,
            )
            passed = [rung for rung in rungs if rung in r.rungs]
            if rule.rule is asha.Rule.STOP:
                if r.phase is TrialPhase.RUNNING:
                    stops.append(Stop(r.id, rule.reason))
                # Only rungs up to the decision count: anything later depended on timing.
                kept = {k: v for k, v in r.rungs.items() if rule.rung is None or k <= rule.rung}
                updated = replace(r, phase=TrialPhase.STOPPED, reason=rule.reason, rungs=kept)
            elif rule.rule is asha.Rule.WAIT:
                passed = [rung for rung in passed if rule.rung is None or rung < rule.rung]
                if r.phase is TrialPhase.SUCCEEDED:
                    # Finished before the trials it is compared with: not a result yet.
                    undecided.add(r.id)
            elif r.phase is TrialPhase.RUNNING and passed:
                promotions.append(Promote(r.id, r.attempts, passed[-1]))
        if r.seed == 0:
            cleared = updated.phase is TrialPhase.SUCCEEDED and r.id not in undecided
            leads[r.learning_rate, r.round] = (updated, passed, cleared)
        out.append(updated)
        earlier.append(updated)
    return out, stops, promotions, undecided


def _resume_parked(
    records: list[TrialRecord], promotions: list[Promote]
) -> tuple[list[TrialRecord], list[Promote]]:
    """A parked trial promoted past its rung has no process to tell: it is queued to go on
    (`resume`) instead, and launched like any queued trial."""
    by_id = {r.id: r for r in records}
    promoted = {
        p.trial
        for p in promotions
        if (r := by_id[p.trial]).parked_at and p.attempt == r.attempts and p.rung >= r.parked_at
    }
    return (
        [resume(r) if r.id in promoted else r for r in records],
        [p for p in promotions if not by_id[p.trial].parked_at],
    )


def waiting_at_rungs(sweep: Sweep, decision: Decision) -> list[TrialRecord]:
    """Trials paused at a rung for their decision (not promoted past it by `decision`), the
    lowest rung first: what `park_waiting` may park."""
    gates = {step for step in sweep.rungs if step < sweep.spec.budget.steps}
    if not strategies.stops_early(sweep.spec.search.strategy):
        return []
    passed = {(p.trial, p.attempt): p.rung for p in decision.promotions}
    waiting = [
        r
        for r in decision.records
        if r.phase is TrialPhase.RUNNING
        and not r.queued
        and not r.parked_at
        and r.step in gates
        and r.step in r.rungs
        and passed.get((r.id, r.attempts), 0) < r.step
    ]
    return sorted(waiting, key=lambda r: (r.step, r.id))


def park_waiting(sweep: Sweep, decision: Decision, room: int) -> Decision:
    """Park up to `room` trials waiting at rungs (`trials.park`), to make room for as many
    trials the runtime cannot start for lack of resources. Decisions stay what they would
    be: a parked trial keeps its rung values and goes on once promoted."""
    parked = {r.id for r in waiting_at_rungs(sweep, decision)[:room]}
    if not parked:
        return decision
    return replace(
        decision, records=tuple(park(r) if r.id in parked else r for r in decision.records)
    )


def _follow(
    r: TrialRecord,
    lead: TrialRecord,
    passed: list[int],
    cleared: bool,
    stops: list[Stop],
    promotions: list[Promote],
    undecided: set[str],
) -> TrialRecord:
    """Another seed of a rate: stopped with its lead, promoted past the rungs the lead passed."""
    if lead.phase in (TrialPhase.STOPPED, TrialPhase.DIVERGED, TrialPhase.FAILED):
        if r.terminal:
            return r
        why = f"stopped with {lead.id}, this rate's seed-0 trial ({lead.phase.value.lower()})"
        if not r.queued:
            stops.append(Stop(r.id, why))
        kept = {k: v for k, v in r.rungs.items() if k in lead.rungs}
        return replace(r, phase=TrialPhase.STOPPED, reason=why, rungs=kept)
    if r.phase is TrialPhase.RUNNING:
        reached = [rung for rung in passed if rung in r.rungs]
        if reached:
            promotions.append(Promote(r.id, r.attempts, reached[-1]))
    elif r.phase is TrialPhase.SUCCEEDED and not cleared:
        undecided.add(r.id)  # its rate is not through every rung yet
    return r


def _launch(sweep: Sweep, r: TrialRecord) -> Launch:
    spec = sweep.spec
    if r.mode == "range-test":
        steps = strategies.range_test_steps(spec)
        return Launch(
            trial=r.id,
            attempt=r.attempts + 1,
            learning_rate=spec.search.min,
            seed=r.seed,
            mode=r.mode,
            steps=steps,
            eval_every=1,
            rungs=(),
            range_start=spec.search.min,
            range_end=spec.search.max,
        )
    return Launch(
        trial=r.id,
        attempt=r.attempts + 1,
        learning_rate=r.learning_rate,
        seed=r.seed,
        mode=r.mode,
        steps=spec.budget.steps,
        eval_every=spec.budget.evalEvery,
        rungs=tuple(sweep.rung_steps),
        gated=strategies.stops_early(spec.search.strategy),
        objective=spec.objective.metric,
        final=r.attempts + 1 - r.resumes > spec.trial.maxRetries,
    )


def _broken(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """A trial that used up its retries while no trial ever made a step."""
    failed = [r for r in records if r.phase is TrialPhase.FAILED]
    if failed and all(r.steps_used == 0 and not r.points for r in records):
        return failed[0]
    return None


def _unscored(records: Sequence[TrialRecord], metric: str, due: Sequence[int]) -> str | None:
    """Why no trial can be scored: an evaluation where the objective was due lacks it.

    Only evaluations known to be complete count: one followed by a later evaluation, or the
    last of a trial that finished its budget (a scrape can catch the newest one half-written).
    """
    for r in records:
        if r.mode == "range-test":
            if (why := _unscored_range_test(r, metric)) is not None:
                return why
            continue
        if not r.points:
            continue
        last = r.points[-1].step
        at = {p.step: p for p in r.points}
        for p in (at[step] for step in due if step in at):
            complete = p.step < last or r.phase is TrialPhase.SUCCEEDED
            if not complete or metric in p.metrics:
                continue
            if any(metric in q.metrics for q in r.points):
                return (
                    f"trial {r.id} reported the objective metric {metric!r} at some "
                    f"evaluations but not at step {p.step}, where the sweep compares trials; "
                    "report it at every evaluation (every budget.evalEvery steps)"
                )
            reported = ", ".join(sorted(p.metrics)) or "no metric"
            return (
                f"the objective metric {metric!r} is not reported: trial {r.id} reported "
                f"{reported} at step {p.step}; set spec.objective.metric to the name the "
                "trainer reports"
            )
    return None


# What every range-test step reports (the rate and smoothed loss become its curve).
RANGE_TEST_STEP_METRICS = frozenset({"train_loss"})


def _unscored_range_test(r: TrialRecord, metric: str) -> str | None:
    """The range test's evaluations (a script reports its step-0 evaluation there too) name
    metrics, but not the objective: it is misnamed, and no trial of the sweep could be
    scored. Said before any candidate runs; only evaluations followed by a later point count
    (a scrape can catch the newest one half-written)."""
    evaluations = [p for p in r.points[:-1] if set(p.metrics) - RANGE_TEST_STEP_METRICS]
    if not evaluations or metric in RANGE_TEST_STEP_METRICS:
        return None
    if any(metric in p.metrics for p in r.points):
        return None
    reported = ", ".join(sorted(set().union(*(p.metrics for p in evaluations))))
    return (
        f"the objective metric {metric!r} is not reported: the range test {r.id} reported "
        f"{reported} at its evaluations; set spec.objective.metric to the name the trainer "
        "reports"
    )


def decide(
    sweep: Sweep,
    records: Sequence[TrialRecord],
    known_range: RangeTestResult | None = None,
) -> Decision:
    spec = sweep.spec
    current = sorted(records, key=lambda r: r.id)
    range_result = range_result_of(current, known_range)
    broken = _broken(current)
    why = (
        f"trials fail before their first step: {broken.reason}"
        if broken is not None
        else _unscored(current, spec.objective.metric, sweep.scored_steps)
    )
    if why is not None:
        return Decision(
            records=tuple(current),
            launches=(),
            stops=tuple(Stop(r.id, "the sweep gave up") for r in current if not r.terminal),
            promotions=(),
            done=True,
            best=None,
            range_result=range_result,
            message=why,
            broken=True,
        )
    current, stops, promotions, undecided = _early_stops(sweep, current, range_result)
    current, promotions = _resume_parked(current, promotions)

    ctx = strategies.Context(spec, sweep.key, current, range_result, undecided)
    proposals = strategies.PROPOSERS[spec.search.strategy](ctx)
    room = max(0, spec.search.maxTrials - len(current))
    next_round = max((r.round for r in current if r.mode == "train"), default=-1) + 1
    for p in proposals[:room]:
        current.append(
            TrialRecord(
                id=trial_id(len(current)),
                learning_rate=p.learning_rate,
                seed=p.seed,
                mode=p.mode,
                round=next_round if p.mode == "train" else 0,
            )
        )

    # A parked trial holds nothing: it takes no slot of `parallelism`.
    running = sum(1 for r in current if not r.terminal and not r.queued and not r.parked_at)
    launches: list[Launch] = []
    launched: dict[str, TrialRecord] = {}
    for r in current:
        if running >= spec.search.parallelism:
            break
        if r.queued and not r.terminal:
            launches.append(_launch(sweep, r))
            launched[r.id] = replace(
                r,
                attempts=r.attempts + 1,
                queued=False,
                reason=f"attempt {r.attempts + 1} launched",
            )
            running += 1
    current = [launched.get(r.id, r) for r in current]

    done = all(r.terminal for r in current) and not undecided
    ctx = strategies.Context(spec, sweep.key, current, range_result, undecided)
    best = strategies.best_rate(ctx)
    message = _message(current, best, done, spec.objective.goal)
    edge = strategies.edge_note(ctx, best) if done and best is not None else ""
    flat = strategies.flat_note(ctx, best) if done and best is not None else ""
    missed = _missed_rungs(current, sweep) if strategies.stops_early(spec.search.strategy) else ""
    caveat = "; ".join(note for note in (missed, flat, edge) if note)
    if caveat:
        message = f"{message}; {caveat}"
    return Decision(
        records=tuple(current),
        launches=tuple(launches),
        stops=tuple(stops),
        promotions=tuple(promotions),
        done=done,
        best=best,
        range_result=range_result,
        message=message,
        caveat=caveat,
        at_edge=edge,
    )


def _missed_rungs(records: Sequence[TrialRecord], sweep: Sweep) -> str:
    """A note when a trial evaluated either side of a rung but not at it ('' otherwise).

    Early stopping compares trials only at the rungs' evaluations, so a script that
    evaluates on its own schedule instead of where `session.should_evaluate` says is never
    stopped early: the sweep still finds its winner, at the cost of every trial's full budget.
    """
    rungs = sweep.rungs
    for r in records:
        if r.mode != "train":
            continue
        steps = [p.step for p in r.points]
        for rung in rungs:
            after = bisect.bisect_left(steps, rung)
            if 0 < after < len(steps) and steps[after] != rung:
                shown = ", ".join(str(step) for step in steps[after - 1 : after + 1])
                return (
                    f"trial {r.id} evaluated at steps {shown} but not at {rung}, where the "
                    "sweep compares trials, so early stopping cannot judge it there: "
                    "evaluate where session.should_evaluate(step) says (every "
                    f"budget.evalEvery = {sweep.spec.budget.evalEvery} steps), or set "
                    "budget.evalEvery to the script's interval"
                )
    return ""


def _message(
    records: Sequence[TrialRecord], best: strategies.Best | None, done: bool, goal: Goal
) -> str:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.phase.value] = counts.get(r.phase.value, 0) + 1
    summary = ", ".join(f"{n} {phase.lower()}" for phase, n in sorted(counts.items()))
    if done and best is None:
        failures = [r.reason for r in records if r.phase is TrialPhase.FAILED]
        last = f"; last failure: {failures[-1]}" if failures else ""
        return f"no trial completed its full budget ({summary}){last}"
    if best is not None:
        return f"best rate {best.learning_rate:g} ({goal.value} score {best.score:.4g}); {summary}"
    return summary


def range_result_from_status(status: RangeTestStatus | None) -> RangeTestResult | None:
    if status is None:
        return None
    return RangeTestResult(
        steepest=status.steepest,
        valley=status.valley,
        divergence=status.divergence,
        minimum=status.minimum,
        ceiling=status.ceiling,
        descent=status.descent,
    )
