"""One benchmark case (task, seed): the ground truth, then every strategy and peer on it.

Everything reads the same cached curves (`curves.Store`), and every result is charged the
steps its trials trained, in R (steps of one full run):

- LRSweep's strategies run through the engine's own loop (`lrsweep.runtime.local.run_sweep`,
  the loop of `lrsweep run`) with a backend whose trials follow the curves: the same
  decisions a local sweep of the task's script makes, without a process per trial;
- Optuna (TPE sampler with successive-halving or Hyperband pruning, intermediate values at
  every evaluation) until it has spent 4 R or 8 R;
- torch-lr-finder's range test and suggestion, then one full run at the suggestion;
- the 4-R oracle: four full runs sqrt(2) apart around the dense rate with the best mean
  over the task's other seeds, the best one kept (no search cost; an estimate of what 4 R
  of full runs can reach when one knows where to look).
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.suite import curves
from benchmarks.suite.tasks import Task, build, loader
from lrsweep.api import LRSweep
from lrsweep.engine import strategies
from lrsweep.engine.space import tidy
from lrsweep.engine.sweep import Decision, Launch, Sweep
from lrsweep.runtime.following import Curve, CurveBackend
from lrsweep.runtime.local import run_sweep

REDUCTION_FACTOR = 3


def curve_backend(stores: Callable[[int], curves.Store]) -> CurveBackend:
    """Trials that follow the task's curves (`stores`: by trial seed), trained as far as each
    trial needs."""

    def range_test(launch: Launch) -> Curve:
        span = (launch.range_start, launch.range_end)
        if span[0] is None or span[1] is None:
            raise ValueError(f"{launch.trial} is a range test without its range")
        return stores(launch.seed).range_test(launch.steps, (span[0], span[1]))

    return CurveBackend(
        train=lambda launch, until: stores(launch.seed).train(launch.learning_rate, until),
        range_test=range_test,
    )


def sweep_doc(
    task: Task,
    seed: int,
    search: Mapping[str, Any],
    python: str = "python",
    budget: Mapping[str, Any] | None = None,
) -> LRSweep:
    """The LRSweep a user would write for the task (its script as the trial's command);
    `budget` replaces the suite's (steps, evalEvery steps/20, minSteps steps/10)."""
    if budget is None:
        budget = {
            "steps": task.steps,
            "evalEvery": task.eval_every,
            "minSteps": task.min_steps,
            "reductionFactor": REDUCTION_FACTOR,
        }
    return LRSweep.model_validate(
        {
            "apiVersion": "lrsweep.dev/v1alpha1",
            "kind": "LRSweep",
            "metadata": {"name": f"{task.name}-s{seed}"},
            "spec": {
                "search": {"min": curves.SEARCH_MIN, "max": curves.SEARCH_MAX, **search},
                "budget": dict(budget),
                "objective": {"metric": task.metric, "goal": task.goal},
                "trial": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "trainer",
                                    "image": "python",
                                    "command": [python, "-m", "benchmarks.suite.tasks"],
                                    "args": [task.name],
                                    "env": [{"name": "LRSWEEP_SEED", "value": str(seed)}],
                                }
                            ]
                        }
                    }
                },
            },
        }
    )


@dataclass(frozen=True)
class Result:
    """What one strategy chose on one case, and what it cost."""

    strategy: str
    rate: float | None
    compute_r: float
    trials: int
    note: str = ""  # e.g. the engine's edge warning, or why nothing was chosen


def engine(
    task: Task,
    seed: int,
    stores: Callable[[int], curves.Store],
    label: str,
    search: Mapping[str, Any],
    doc: LRSweep | None = None,
) -> tuple[Result, Decision]:
    """An LRSweep strategy on the case, through the engine's own loop (`doc`: the sweep
    document, when not the suite's for `search`)."""
    doc = doc or sweep_doc(task, seed, search)
    sweep = Sweep(doc.spec, key=doc.metadata.name)
    decision = run_sweep(
        sweep, curve_backend(lambda s: stores(seed + s)), interval=0.0, sleep=lambda _: None
    )
    steps = sum(r.steps_used for r in decision.records)
    best = decision.best
    note = ""
    if best is not None:
        context = strategies.Context(doc.spec, sweep.key, decision.records, decision.range_result)
        note = strategies.edge_note(context, best)
    rate = best.learning_rate if best else None
    return Result(label, rate, steps / task.steps, len(decision.records), note), decision


def optuna_run(task: Task, seed: int, store: curves.Store, pruner: str, budget_r: float) -> Result:
    """Optuna as its documentation shows it: TPE, a pruner, intermediate values reported at
    every evaluation; trials until `budget_r` full runs' worth of steps is spent."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spent = 0
    budget = budget_r * task.steps
    pruners: dict[str, optuna.pruners.BasePruner] = {
        "sha": optuna.pruners.SuccessiveHalvingPruner(
            min_resource=task.min_steps, reduction_factor=REDUCTION_FACTOR
        ),
        "hyperband": optuna.pruners.HyperbandPruner(
            min_resource=task.min_steps,
            max_resource=task.steps,
            reduction_factor=REDUCTION_FACTOR,
        ),
    }
    study = optuna.create_study(
        # Named: Hyperband assigns trials to brackets by a hash of the study's name.
        study_name=f"{task.name}-s{seed}",
        direction=task.goal,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruners[pruner],
    )

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        rate = trial.suggest_float("lr", curves.SEARCH_MIN, curves.SEARCH_MAX, log=True)
        curve = store.train(rate)
        for point in curve.points:
            value = point.metrics[task.metric]
            trial.report(value, point.step)
            if trial.should_prune():
                spent += point.step
                raise optuna.TrialPruned()
        spent += curve.end
        if curve.diverged:
            raise optuna.TrialPruned()  # its reported values stand; nothing final to return
        return curve.points[-1].metrics[task.metric]

    def enough(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    study.optimize(objective, callbacks=[enough])
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    rate = float(study.best_params["lr"]) if complete else None
    label = f"optuna-tpe-{pruner}-{budget_r:g}R"
    return Result(label, rate, spent / task.steps, len(study.trials))


LR_FINDER_ITERATIONS = 100  # torch-lr-finder's default


def lr_finder_run(task: Task, seed: int) -> Result:
    """torch-lr-finder's range test and suggestion (steepest descent), then one full run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    _, model, criterion = build(task, seed)
    optimizer = task.optimizer(model.parameters(), curves.SEARCH_MIN)
    finder = LRFinder(model, optimizer, criterion, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        finder.range_test(
            loader(task, seed), end_lr=curves.SEARCH_MAX, num_iter=LR_FINDER_ITERATIONS
        )
        _, suggestion = finder.plot(suggest_lr=True)
    plt.close("all")
    used = len(finder.history["lr"])
    if suggestion is None:
        return Result("torch-lr-finder", None, used / task.steps, 1, "no suggestion")
    return Result("torch-lr-finder", float(suggestion), used / task.steps + 1.0, 2)


def oracle(centre: float, runs: int = 4) -> list[float]:
    """`runs` rates sqrt(2) apart, centred (on the log scale) on `centre`."""
    return [tidy(centre * 2 ** ((k - (runs - 1) / 2) / 2)) for k in range(runs)]


def best_rate(finals: Mapping[float, float | None], goal: str) -> float | None:
    scored = {r: v for r, v in finals.items() if v is not None and math.isfinite(v)}
    if not scored:
        return None
    pick = max if goal == "maximize" else min
    return pick(scored, key=lambda r: scored[r])


def mean_best(truths: Sequence[Mapping[float, float | None]], goal: str) -> float | None:
    """The dense rate with the best mean over `truths` (every one scored there)."""
    means = {}
    for rate in curves.DENSE:
        values = [t.get(rate) for t in truths]
        if values and all(v is not None for v in values):
            means[rate] = statistics.fmean(v for v in values if v is not None)
    return best_rate(means, goal)
