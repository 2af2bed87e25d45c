"""Summaries, the markdown report and the plot of benchmarks/search_efficiency.py."""

from __future__ import annotations

import json
import math
import shlex
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.search_efficiency import GroundTruth, Run, Settings, ShortHorizon

# The benchmark's target for the default strategy.
TARGET_SHARE = 0.9
TARGET_MEDIAN_COMPUTE = 4.0
# A first rung whose contenders' rank correlation with final scores is below this is "low".
LOW_CORRELATION = 0.5
# Scores of the same (task, rate, seed) must agree this closely wherever they ran.
DETERMINISM_TOLERANCE = 1e-9
# For scale: exhaustive grids made of every k-th dense rate, for these k.
SPARSER_GRID_STEPS = (2, 3, 4, 5)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _strategy_summary(runs: Sequence[Run]) -> dict[str, Any]:
    regrets = [r.regret for r in runs if r.regret is not None]
    hits = sum(r.within() for r in runs)
    return {
        "cases": len(runs),
        "within_target": hits,
        "within_target_share": round(hits / len(runs), 4),
        "within_1pct_share": round(
            sum(r.regret is not None and r.regret <= 0.01 for r in runs) / len(runs), 4
        ),
        "median_compute_r": round(statistics.median(r.compute_r for r in runs), 3),
        "mean_regret": _round(statistics.fmean(regrets) if regrets else None, 5),
        "median_regret": _round(statistics.median(regrets) if regrets else None, 5),
        "max_regret": _round(max(regrets) if regrets else None, 5),
        "no_winner": sum(r.regret is None for r in runs),
    }


def neighbour_regret(truth: GroundTruth) -> float | None:
    """Mean regret of the dense rates one step either side of the best (x or / 10^(5/34)).

    How rough the landscape is at the optimum: the regret of missing it by one grid step.
    """
    points = sorted(truth.points, key=lambda p: p.lr)
    best_lr, _ = truth.best
    at = next(i for i, p in enumerate(points) if p.lr == best_lr)
    finals = [points[i].final for i in (at - 1, at + 1) if 0 <= i < len(points)]
    regrets = [truth.regret(final) for final in finals if final is not None]
    return statistics.fmean(regrets) if regrets else None


def _nearest(truth: GroundTruth, lr: float) -> tuple[float, float | None]:
    """The dense rate nearest to `lr` (log scale) and its final score."""
    point = min(truth.points, key=lambda p: abs(math.log(p.lr / lr)))
    return point.lr, point.final


def _cut_contenders(run: Run, truth: GroundTruth, tolerance: float) -> list[dict[str, Any]]:
    """Trials stopped at a rung whose nearest dense rate is within target at full budget.

    Approximate (the trial's rate is up to half a grid step from that dense rate, and the
    landscape is rough), but it separates early-stopping misses from placement misses.
    """
    cut = []
    for row in run.trial_rows:
        if row["mode"] != "train" or row["phase"] != "Stopped":
            continue
        lr, final = _nearest(truth, row["lr"])
        if final is not None and truth.regret(final) <= max(tolerance, run.seed_sd):
            cut.append(
                {
                    "lr": row["lr"],
                    "stopped_at": row["steps"],
                    "nearest_dense_lr": lr,
                    "nearest_dense_regret": round(truth.regret(final), 4),
                }
            )
    return cut


def _miss_cause(run: Run, truth: GroundTruth, tolerance: float) -> str:
    """Why a case missed: a near-best rate was cut early, never tried, or ran but lost."""
    if run.chosen_lr is None:
        return "no winner: every full run diverged or failed"
    near = []
    for row in run.trial_rows:
        if row["mode"] != "train":
            continue
        _, final = _nearest(truth, row["lr"])
        if final is not None and truth.regret(final) <= max(tolerance, run.seed_sd):
            near.append(row)
    if not near:
        return "placement: no tried rate is next to a within-target dense rate"
    cut = [r for r in near if r["phase"] == "Stopped"]
    if cut:
        where = ", ".join(f"{r['lr']:.4g} at step {r['steps']}" for r in cut)
        return f"early stopping: near-best rate(s) cut at a rung ({where})"
    return "roughness: near-best rates ran fully but scored worse than their dense neighbour"


def _suggestions(
    runs: Sequence[Run], truths: Mapping[tuple[str, int], GroundTruth], strategy: str
) -> dict[str, Any]:
    """Each range-test suggestion against the dense best: log10(suggestion / best).

    `limit/10` is a tenth of the first rate where the range test blew up or climbed back
    above its starting loss (min of divergence and ceiling), the limit adaptive's window
    hangs from.
    """
    cases: list[dict[str, Any]] = []
    for run in runs:
        rt = run.range_test
        if run.strategy != strategy or rt is None:
            continue
        best_lr, _ = truths[run.task, run.seed].best
        limits = [x for x in (rt.get("divergence"), rt.get("ceiling")) if x is not None]
        values = {
            "valley": rt.get("valley"),
            "steepest": rt.get("steepest"),
            "minimum": rt.get("minimum"),
            "limit/10": min(limits) / 10 if limits else None,
        }
        cases.append(
            {
                "task": run.task,
                "seed": run.seed,
                "dense_best_lr": best_lr,
                "log10_ratio": {
                    k: None if v is None else round(math.log10(v / best_lr), 3)
                    for k, v in values.items()
                },
            }
        )
    summary = {}
    for name in ("valley", "steepest", "minimum", "limit/10"):
        distances = [
            abs(c["log10_ratio"][name]) for c in cases if c["log10_ratio"][name] is not None
        ]
        summary[name] = {
            "cases": len(distances),
            "mean_abs_log10": _round(statistics.fmean(distances) if distances else None, 3),
            "within_2x": sum(d <= math.log10(2) for d in distances),
        }
    return {"summary": summary, "cases": cases}


def _determinism(runs: Sequence[Run], truths: Mapping[tuple[str, int], GroundTruth]) -> Any:
    """Every full run of a dense-grid rate must score exactly what the ground truth says."""
    compared = 0
    mismatches: list[dict[str, Any]] = []
    for run in runs:
        finals = truths[run.task, run.seed].finals
        for row in run.trial_rows:
            if row["final"] is None or row["lr"] not in finals:
                continue
            compared += 1
            expected = finals[row["lr"]]
            if abs(row["final"] - expected) > DETERMINISM_TOLERANCE * max(1.0, abs(expected)):
                mismatches.append(
                    {
                        "task": run.task,
                        "seed": run.seed,
                        "strategy": run.strategy,
                        "lr": row["lr"],
                        "score": row["final"],
                        "ground_truth": expected,
                    }
                )
    return {"compared": compared, "mismatches": mismatches}


def share_interval(hits: int, cases: int) -> list[float]:
    """Exact (Clopper-Pearson) 95% interval of a share measured as hits out of cases."""
    from scipy import stats

    interval = stats.binomtest(hits, cases).proportion_ci(confidence_level=0.95)
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def _target(summary: Mapping[str, Mapping[str, Any]], default: str) -> dict[str, Any]:
    mine = summary[default]
    mean = mine["mean_regret"]

    def lower_than(other: str) -> dict[str, Any]:
        theirs = summary[other]["mean_regret"]
        met = mean is not None and (theirs is None or mean < theirs)
        return {"value": mean, "other": theirs, "met": met}

    checks = {
        "within_share": {
            "value": mine["within_target_share"],
            "required": TARGET_SHARE,
            "met": mine["within_target_share"] >= TARGET_SHARE,
            "cases": mine["cases"],
            "hits": mine["within_target"],
            # How precisely so few cases measure the share: the exact (Clopper-Pearson) 95%
            # interval of a binomial proportion. Context only; `met` compares the share.
            "interval_95": share_interval(mine["within_target"], mine["cases"]),
        },
        "median_compute_r": {
            "value": mine["median_compute_r"],
            "required": TARGET_MEDIAN_COMPUTE,
            "met": mine["median_compute_r"] <= TARGET_MEDIAN_COMPUTE,
        },
        "mean_regret_below_random_2x": lower_than("random-2x"),
        "mean_regret_below_rangeTest_valley": lower_than("rangeTest-valley"),
        "mean_regret_below_rangeTest_steepest": lower_than("rangeTest-steepest"),
    }
    return {"met": all(c["met"] for c in checks.values()), **checks}


def best_score_spread(
    settings: Settings, truths: Mapping[tuple[str, int], GroundTruth]
) -> dict[str, float]:
    """Per task, the relative sd over seeds of each seed's best dense-grid score.

    Another reading of the target's "seed standard deviation of the grid-best score" than the
    tolerance's (`seed_spread`: the sd over seeds of one rate's score, the rate with the best
    mean): reported beside it, never used for the target.
    """
    from benchmarks.search_efficiency import relative_sd

    return {
        task.name: relative_sd([truths[task.name, seed].best[1] for seed in settings.seeds])
        for task in settings.tasks
    }


def _other_tolerance(
    settings: Settings, runs: Sequence[Run], truths: Mapping[tuple[str, int], GroundTruth]
) -> dict[str, Any]:
    """Each strategy's cases within max(TOLERANCE, `best_score_spread`)."""
    from benchmarks.search_efficiency import STRATEGIES, within_target

    spread = best_score_spread(settings, truths)
    within = {
        s: sum(within_target(r.regret, spread[r.task]) for r in runs if r.strategy == s)
        for s in STRATEGIES
    }
    return {"seed_sd": {t: round(v, 5) for t, v in spread.items()}, "within_target": within}


def noise_floor_summary(
    settings: Settings,
    truths: Mapping[tuple[str, int], GroundTruth],
    floors: Mapping[tuple[str, int], GroundTruth],
    others: Mapping[tuple[str, int], GroundTruth],
    spreads: Mapping[str, tuple[float | None, float]],
) -> dict[str, Any] | None:
    """Regret of full runs 2% either side of each seed's dense-best rate, how many hit, and
    the cases where the dense best is the only full run recorded at the seed within target
    (besides the dense grid and the nudged rates, the rates strategies chose at other seeds)."""
    from benchmarks.search_efficiency import NUDGE, within_target

    if not floors:
        return None
    cases: list[dict[str, Any]] = []
    only_best: list[dict[str, Any]] = []
    for task in settings.tasks:
        for seed in settings.seeds:
            floor = floors.get((task.name, seed))
            if floor is None:
                continue
            truth = truths[task.name, seed]
            best_lr, _ = truth.best
            tolerance = spreads[task.name][1]
            other = others.get((task.name, seed))
            within = [
                p.lr
                for p in (*truth.points, *floor.points, *(other.points if other else ()))
                if p.final is not None and within_target(truth.regret(p.final), tolerance)
            ]
            if within == [best_lr]:
                only_best.append({"task": task.name, "seed": seed})
            for point in floor.points:
                regret = None if point.final is None else truth.regret(point.final)
                cases.append(
                    {
                        "task": task.name,
                        "seed": seed,
                        "dense_best_lr": best_lr,
                        "lr": point.lr,
                        "regret": _round(regret, 5),
                        "within_target": within_target(regret, spreads[task.name][1]),
                    }
                )
    hits = sum(bool(c["within_target"]) for c in cases)
    return {
        "nudge": NUDGE,
        "runs": cases,
        "within_target": hits,
        "share_within_target": _round(hits / len(cases) if cases else None, 3),
        "only_best": only_best,
    }


def sparser_grids(
    settings: Settings,
    truths: Mapping[tuple[str, int], GroundTruth],
    spreads: Mapping[str, tuple[float | None, float]],
    steps: Sequence[int] = SPARSER_GRID_STEPS,
) -> list[dict[str, Any]]:
    """What an exhaustive grid k times sparser than the dense one achieves, for scale.

    Every k-th dense rate, from each of the k possible first rates, is a grid whose rates
    all ran for the full budget in the ground truth (nothing new is trained); it picks the
    rate with the best final score at the seed, and its compute is its number of rates in R.
    A grid whose rates all diverged has no pick: a miss.
    """
    from benchmarks.search_efficiency import best_of, within_target

    rows: list[dict[str, Any]] = []
    for step in steps:
        grids: list[tuple[str, float | None, int]] = []  # (task, regret, rates)
        for task in settings.tasks:
            for seed in settings.seeds:
                truth = truths[task.name, seed]
                points = sorted(truth.points, key=lambda p: p.lr)
                if step >= len(points):
                    continue
                for first in range(step):
                    finals = [p.final for p in points[first::step] if p.final is not None]
                    regret = truth.regret(best_of(finals, truth.goal)) if finals else None
                    grids.append((task.name, regret, len(points[first::step])))
        if not grids:
            continue
        regrets = [r for _, r, _ in grids if r is not None]
        by_task: dict[str, list[bool]] = {}
        for task_name, regret, _ in grids:
            by_task.setdefault(task_name, []).append(within_target(regret, spreads[task_name][1]))
        hits = sum(sum(h) for h in by_task.values())
        rows.append(
            {
                "every": step,
                "grids": len(grids),
                "mean_compute_r": round(statistics.fmean(n for *_, n in grids), 2),
                "within_target_share": round(hits / len(grids), 4),
                "mean_regret": _round(statistics.fmean(regrets) if regrets else None, 5),
                "median_regret": _round(statistics.median(regrets) if regrets else None, 5),
                "within_target_by_task": {
                    t: round(sum(hits) / len(hits), 4) for t, hits in by_task.items()
                },
            }
        )
    return rows


def _score_at(
    lr: float, truth: GroundTruth, extra: GroundTruth | None
) -> tuple[bool, float | None]:
    """(measured, final score) of a full run at `lr` at the seed of `truth`."""
    for source in (truth, extra):
        for point in source.points if source else ():
            if point.lr == lr:
                return True, point.final
    return False, None


def summarize_other_seeds(
    settings: Settings,
    runs: Sequence[Run],
    truths: Mapping[tuple[str, int], GroundTruth],
    others: Mapping[tuple[str, int], GroundTruth],
    spreads: Mapping[str, tuple[float | None, float]],
) -> dict[str, Any] | None:
    """Each chosen rate at every seed of its task: its mean score against the best mean.

    A user trains the final model at a seed the sweep never saw, so the rate should be good
    across seeds, not only at the one it was picked at. The reference is the dense rate
    with the best mean final score over seeds; a rate that diverges at any seed has no mean.
    """
    from benchmarks.search_efficiency import STRATEGIES, TOLERANCE, regret_of

    if len(settings.seeds) < 2:
        return None
    reference: dict[str, dict[str, float]] = {}
    for task in settings.tasks:
        lr, sd = spreads[task.name]
        if lr is None:
            continue
        mean = statistics.fmean(truths[task.name, s].finals[lr] for s in settings.seeds)
        reference[task.name] = {"lr": lr, "mean": mean, "tolerance": max(TOLERANCE, sd)}
    goals = {task.name: task.goal for task in settings.tasks}
    cases: list[dict[str, Any]] = []
    for run in runs:
        ref = reference.get(run.task)
        if run.chosen_lr is None or ref is None:
            continue
        scores: dict[str, float | None] = {}
        for seed in settings.seeds:
            if seed == run.seed:
                scores[str(seed)] = run.score
                continue
            measured, score = _score_at(
                run.chosen_lr, truths[run.task, seed], others.get((run.task, seed))
            )
            if not measured:
                break
            scores[str(seed)] = score
        else:
            finite = [v for v in scores.values() if v is not None]
            regret = (
                regret_of(statistics.fmean(finite), ref["mean"], goals[run.task])
                if len(finite) == len(scores)
                else None
            )
            cases.append(
                {
                    "task": run.task,
                    "seed": run.seed,
                    "strategy": run.strategy,
                    "chosen_lr": run.chosen_lr,
                    "scores_by_seed": scores,
                    "regret": _round(regret, 5),
                    "within_target": regret is not None and regret <= ref["tolerance"],
                }
            )
    summary: dict[str, Any] = {}
    for strategy in STRATEGIES:
        mine = [c for c in cases if c["strategy"] == strategy]
        regrets = [c["regret"] for c in mine if c["regret"] is not None]
        summary[strategy] = {
            "cases": len(mine),
            "within_target_share": _round(
                sum(c["within_target"] for c in mine) / len(mine) if mine else None, 4
            ),
            "median_regret": _round(statistics.median(regrets) if regrets else None, 5),
            "mean_regret": _round(statistics.fmean(regrets) if regrets else None, 5),
            "diverged_at_another_seed": len(mine) - len(regrets),
        }
    return {"reference": reference, "summary": summary, "runs": cases}


def summarize(
    settings: Settings,
    runs: Sequence[Run],
    truths: Mapping[tuple[str, int], GroundTruth],
    floors: Mapping[tuple[str, int], GroundTruth],
    others: Mapping[tuple[str, int], GroundTruth],
    spreads: Mapping[str, tuple[float | None, float]],
    horizons: Mapping[tuple[str, int], ShortHorizon],
    *,
    timing: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    command: str,
    jobs: int,
) -> dict[str, Any]:
    from benchmarks.search_efficiency import DEFAULT_STRATEGY, STRATEGIES, TOLERANCE

    summary = {s: _strategy_summary([r for r in runs if r.strategy == s]) for s in STRATEGIES}
    # The same over the built-in trainer's tasks only, when there are others too.
    builtin = {task.name for task in settings.tasks if task.script is None}
    summary_builtin = (
        {
            s: _strategy_summary([r for r in runs if r.strategy == s and r.task in builtin])
            for s in STRATEGIES
        }
        if builtin and len(builtin) < len(settings.tasks)
        else {}
    )
    per_task = {
        task.name: {
            s: _strategy_summary([r for r in runs if r.strategy == s and r.task == task.name])
            for s in STRATEGIES
        }
        for task in settings.tasks
    }
    tasks = {}
    for task in settings.tasks:
        sd_lr, sd = spreads[task.name]
        tasks[task.name] = {
            "what": task.what,
            "range": [task.low, task.high],
            "steps": task.steps,
            "evalEvery": task.eval_every,
            "minSteps": task.min_steps,
            "rungs": task.rungs,
            "trainer": (
                {"command": ["python", task.script]}
                if task.script
                else {"args": [*task.trainer_args, "--lr", "$(LRSWEEP_LEARNING_RATE)"]}
            ),
            "why": task.why,
            "dense_points": settings.dense_points,
            "dense_best": {
                str(seed): {
                    "lr": truths[task.name, seed].best[0],
                    "score": truths[task.name, seed].best[1],
                }
                for seed in settings.seeds
            },
            "seed_sd": round(sd, 5),
            "seed_sd_lr": sd_lr,
            "neighbour_regret_by_seed": [
                _round(neighbour_regret(truths[task.name, seed])) for seed in settings.seeds
            ],
        }
    short = {}
    short_detail = {}
    for task in settings.tasks:
        values = [horizons[task.name, s] for s in settings.seeds]
        rhos = [h.spearman for h in values if h.spearman is not None]
        short[task.name] = _round(statistics.fmean(rhos) if rhos else None, 3)
        short_detail[task.name] = {
            "first_rung": values[0].first_rung,
            "spearman_by_seed": [_round(h.spearman, 3) for h in values],
            "first_rung_pick_regret_by_seed": [_round(h.first_rung_pick_regret) for h in values],
            "contenders_first_rung_by_seed": [_round(h.contenders_first, 3) for h in values],
            "contenders_second_rung_by_seed": [_round(h.contenders_second, 3) for h in values],
        }
    return {
        "default_strategy": DEFAULT_STRATEGY,
        "command": command,
        "quick": settings.quick,
        "jobs": jobs,
        "engine": dict(fingerprint),
        "timing": dict(timing),
        "tolerance": f"regret <= max({TOLERANCE:g}, seed_sd)",
        "settings": {
            "strategy_parallelism": settings.strategy_parallelism,
            "seeds": list(settings.seeds),
            "dense_points": settings.dense_points,
            "grid_points": settings.grid_points,
            "asha_candidates": settings.asha_candidates,
            # Only when portable, so that results from before the option stay as they are.
            **({"numerics": "portable"} if any(t.portable for t in settings.tasks) else {}),
        },
        "runs": [
            {
                "task": r.task,
                "seed": r.seed,
                "strategy": r.strategy,
                "chosen_lr": r.chosen_lr,
                "regret": _round(r.regret, 5),
                "compute_r": round(r.compute_r, 3),
                "seed_sd": round(r.seed_sd, 5),
                "score": r.score,
                "trials": r.trials,
                "within_target": r.within(),
            }
            for r in runs
        ],
        "summary": summary,
        "target": _target(summary, DEFAULT_STRATEGY),
        "tolerance_by_best_scores": _other_tolerance(settings, runs, truths),
        "noise_floor": noise_floor_summary(settings, truths, floors, others, spreads),
        "sparser_grids": sparser_grids(settings, truths, spreads),
        "other_seeds": summarize_other_seeds(settings, runs, truths, others, spreads),
        "summary_builtin_tasks": summary_builtin,
        "per_task": per_task,
        "short_horizon": short,
        "short_horizon_detail": short_detail,
        "tasks": tasks,
        "checks": {"deterministic_scores": _determinism(runs, truths)},
        "diagnostics": {
            "range_test_suggestions": _suggestions(runs, truths, DEFAULT_STRATEGY),
            "misses": [
                {
                    "task": r.task,
                    "seed": r.seed,
                    "strategy": r.strategy,
                    "cause": _miss_cause(r, truths[r.task, r.seed], TOLERANCE),
                }
                for r in runs
                if r.strategy in ("adaptive", "asha") and not r.within()
            ],
        },
        "details": {
            f"{r.task}/s{r.seed}/{r.strategy}": {
                "compute_breakdown": r.breakdown,
                "cut_contenders": _cut_contenders(r, truths[r.task, r.seed], TOLERANCE),
                "range_test": r.range_test,
                "message": r.message,
                "seconds": round(r.seconds, 1),
                "trials": r.trial_rows,
            }
            for r in runs
        },
    }


# --- markdown -------------------------------------------------------------------------------


def _joined(values: Sequence[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


def titled(title: str, command: str) -> list[str]:
    """A report's first lines: its title and the command that reproduces it."""
    return [f"# {title}", "", "Reproduce (from the repository root):", "", "```sh", command, "```"]


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _lr(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _share_with_interval(check: Mapping[str, Any]) -> str:
    low, high = check["interval_95"]
    return (
        f"{check['value']:.0%} ({check['hits']} of {check['cases']}; "
        f"95% interval {low:.0%}-{high:.0%})"
    )


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _summary_table(
    summary: Mapping[str, Mapping[str, Any]], strategies: Sequence[str]
) -> list[str]:
    lines = [
        "| strategy | cases | within target | regret <= 1% | median compute | mean regret "
        "| median regret | max regret | no winner |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in strategies:
        m = summary[s]
        lines.append(
            f"| {s} | {m['cases']} | {m['within_target_share']:.0%} | "
            f"{m['within_1pct_share']:.0%} | {m['median_compute_r']:.2f} R | "
            f"{pct(m['mean_regret'])} | {pct(m['median_regret'])} | {pct(m['max_regret'])} | "
            f"{m['no_winner']} |"
        )
    return lines


def _other_tolerance_lines(result: Mapping[str, Any]) -> list[str]:
    other = result.get("tolerance_by_best_scores")
    if other is None or len(result["settings"]["seeds"]) < 2:
        return []
    ours = {r["task"]: r["seed_sd"] for r in result["runs"]}
    sds = ", ".join(
        f"{task} {sd:.1%} against {ours[task]:.1%}" for task, sd in other["seed_sd"].items()
    )
    cases = result["summary"][result["default_strategy"]]["cases"]
    hits = other["within_target"][result["default_strategy"]]
    return [
        "The tolerance's seed sd is the spread over seeds of one rate's final score, at the "
        "rate with the best mean. Read instead as the spread over seeds of each seed's best "
        f"dense-grid score ({sds}), `{result['default_strategy']}` is within target in "
        f"{hits} of {cases} cases. For comparison only: the target above uses the first.",
        "",
    ]


def _noise_floor_lines(floor: Mapping[str, Any] | None) -> list[str]:
    if not floor or not floor["runs"]:
        return []
    nudge = floor["nudge"]
    lines = [
        f"## Noise floor: the dense best, nudged by {nudge - 1:.0%}",
        "",
        f"Full runs at each seed's dense-best rate /{nudge:g} and x{nudge:g}, same task, "
        "budget and seed. Their regret is what a search would get that knew the best rate to "
        f"within {nudge - 1:.0%} but did not land on the dense-grid rate itself. "
        f"**{floor['within_target']} of {len(floor['runs'])} "
        f"({floor['share_within_target']:.0%}) are within target**: the share any strategy "
        "can expect where the score is this rough around the optimum.",
        "",
        f"| task | seed | dense best | regret at /{nudge:g} | regret at x{nudge:g} |",
        "|---|---|---|---|---|",
    ]
    by_case: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for run in floor["runs"]:
        by_case.setdefault((run["task"], run["seed"]), []).append(run)
    for (task, seed), pair in by_case.items():
        cells = [
            pct(r["regret"]) + ("" if r["within_target"] else " (miss)")
            for r in sorted(pair, key=lambda r: r["lr"])
        ]
        lines.append(f"| {task} | {seed} | {_lr(pair[0]['dense_best_lr'])} | {' | '.join(cells)} |")
    return [*lines, "", *_only_best_lines(floor, len(by_case))]


def _only_best_lines(floor: Mapping[str, Any], cases: int) -> list[str]:
    """The cases where the dense best is the only run recorded at the seed within target."""
    only = floor.get("only_best")
    if not only:  # none, or results from before it was recorded
        return []
    nudge = floor["nudge"]
    named = ", ".join(f"{c['task']} {c['seed']}" for c in only)
    return [
        f"In {len(only)} of these {cases} cases ({named}) the dense best is the only full run "
        "recorded at the seed that is within target: no other dense rate is, nor either rate "
        f"{nudge - 1:.0%} beside it, nor a rate a strategy chose at another seed (see Other "
        "seeds). There the target is met by landing on a rate that does as well as that "
        "one, which none of these runs did; a strategy that misses them is within target in "
        f"at most {(cases - len(only)) / cases:.0%} of the cases ({cases - len(only)} of "
        f"{cases}), and then only by a hit in every other one.",
        "",
    ]


def _sparser_grid_lines(result: Mapping[str, Any], spacing: float) -> list[str]:
    rows = result["sparser_grids"]
    if not rows:
        return []
    mine = result["summary"][result["default_strategy"]]
    tasks = list(rows[0]["within_target_by_task"])
    lines = [
        "## For scale: exhaustive grids sparser than the dense one",
        "",
        "Every k-th rate of the dense grid, from each of the k possible first rates, as a grid "
        "that trains every rate for the full budget and picks the best final score at the "
        "seed. Read from the ground truth (no new runs); compute is the number of rates. "
        f"For comparison, `{result['default_strategy']}` is within target in "
        f"{mine['within_target_share']:.0%} of cases at a median {mine['median_compute_r']:.2f} R.",
        "",
        "| grid | spacing | compute | grids | within target | mean regret | median regret | "
        + " | ".join(tasks)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(tasks),
    ]
    for row in rows:
        every = row["every"]
        by_task = " | ".join(f"{row['within_target_by_task'][t]:.0%}" for t in tasks)
        lines.append(
            f"| 1 in {every} dense rates | "
            f"x{spacing**every:.2f} | {row['mean_compute_r']:.1f} R | {row['grids']} | "
            f"{row['within_target_share']:.0%} | {pct(row['mean_regret'])} | "
            f"{pct(row['median_regret'])} | {by_task} |"
        )
    return [*lines, ""]


def _other_seeds_lines(other: Mapping[str, Any] | None, strategies: Sequence[str]) -> list[str]:
    if not other or not other["runs"]:
        return []
    lines = [
        "## Other seeds: does the chosen rate carry over?",
        "",
        "A user trains the final model at a seed the sweep never saw. Each strategy's chosen "
        "rate is also trained fully at the task's other seeds; its mean final score over all "
        "seeds is compared with the dense rate of best mean score over seeds (regret against "
        "that mean, within target under the same tolerance). A rate that diverges at another "
        "seed has no mean: a miss. This is not the benchmark's target, but it separates a rate "
        "that is good from one that was lucky at its seed.",
        "",
        "| strategy | cases | within target | median regret | mean regret | diverged at "
        "another seed |",
        "|---|---|---|---|---|---|",
    ]
    for s in strategies:
        m = other["summary"][s]
        share = "-" if m["within_target_share"] is None else f"{m['within_target_share']:.0%}"
        lines.append(
            f"| {s} | {m['cases']} | {share} | {pct(m['median_regret'])} | "
            f"{pct(m['mean_regret'])} | {m['diverged_at_another_seed']} |"
        )
    reference = ", ".join(f"{task} {_lr(r['lr'])}" for task, r in other["reference"].items())
    return [*lines, "", f"Best mean rate per task: {reference}.", ""]


def low_first_rung(detail: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Tasks whose first-rung scores barely rank the contenders (mean over seeds)."""
    low = []
    for task, d in detail.items():
        values = [v for v in d["contenders_first_rung_by_seed"] if v is not None]
        if values and statistics.fmean(values) < LOW_CORRELATION:
            low.append(task)
    return low


def markdown(result: Mapping[str, Any]) -> str:
    from benchmarks.search_efficiency import (
        STRATEGIES,
        adaptive_defaults,
        machine_line,
        ran_portable,
    )

    target = result["target"]
    timing = result["timing"]
    conf = result["settings"]
    # Results from before the defaults were recorded: those of the code rendering them.
    defaults = result["engine"].get("adaptive") or adaptive_defaults()
    dense = conf["dense_points"]
    spacing = 10 ** (5 / (dense - 1))
    lines = [
        "# Search efficiency against a dense ground-truth grid",
        "",
        "Reproduce (from the repository root; the ground truth is cached in "
        f"`{_out_of(result['command'])}/ground-truth/`, delete it or pass `--fresh` after "
        "changing the trainer):",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        f"Engine: commit `{result['engine']['commit']}`, engine code sha256 "
        f"`{result['engine']['engine_sha256']}` (its syntax trees, docstrings left out)"
        + (
            f"; trials waited up to {gate:g} s at a rung for a decision"
            if (gate := result["engine"].get("gate_timeout_s")) is not None
            else ""
        )
        + "."
        + machine_line(result["engine"])
        + (
            " Trials ran on portable numerics (`--portable-numerics`): the same scores on any "
            "x86 CPU with these library versions."
            if ran_portable(result)
            else ""
        )
        + " "
        f"Wall time {timing['total_s'] / 60:.1f} min "
        f"with --jobs {result['jobs']} (ground truth {timing['ground_truth_s'] / 60:.1f} min, "
        f"{timing['ground_truth_cached']} of {timing['ground_truth_sweeps']} sweeps from the "
        f"cache; computing all of them took {timing['ground_truth_compute_s'] / 60:.1f} min)"
        + (
            f"; {timing['strategy_runs_cached']} of {timing['strategy_runs']} strategy runs "
            "came from the run cache (an earlier invocation with the same engine code, e.g. "
            "an interrupted one or `benchmarks.parallelism`)."
            if timing.get("strategy_runs_cached")
            else "."
        ),
        "",
        "Regret = score(chosen rate) / best dense-grid score - 1 at the same seed"
        f"; a case is within target when {result['tolerance']}. Compute in R = training "
        "steps of every trial (range test included) / steps of one full run.",
        "",
        "## Target for `adaptive`",
        "",
        "| criterion | value | required | met |",
        "|---|---|---|---|",
        f"| cases within target | {_share_with_interval(target['within_share'])} | >= 90% | "
        f"{_yes(target['within_share']['met'])} |",
        f"| median compute | {target['median_compute_r']['value']:.2f} R | <= 4 R | "
        f"{_yes(target['median_compute_r']['met'])} |",
    ]
    for key, name in (
        ("mean_regret_below_random_2x", "random-2x"),
        ("mean_regret_below_rangeTest_valley", "rangeTest-valley"),
        ("mean_regret_below_rangeTest_steepest", "rangeTest-steepest"),
    ):
        check = target[key]
        lines.append(
            f"| mean regret below {name} | {pct(check['value'])} | < {pct(check['other'])} | "
            f"{_yes(check['met'])} |"
        )
    lines += [
        "",
        f"**Target met: {'yes' if target['met'] else 'no'}.**",
        "",
        "The 95% interval (exact binomial) says how precisely this many cases measure the "
        "share; the target compares the measured share itself.",
        "",
        *_other_tolerance_lines(result),
        *_noise_floor_lines(result.get("noise_floor")),
        *_sparser_grid_lines(result, spacing),
        "## Per strategy (all tasks and seeds)",
        "",
        "Mean regret is over cases with a winner; a sweep with no winner (its full runs "
        "diverged) counts as a miss.",
        "",
        *_summary_table(result["summary"], STRATEGIES),
    ]
    if result.get("summary_builtin_tasks"):
        lines += [
            "",
            "The same over the built-in trainer's tasks only. The user script's spirals reach a "
            "validation loss near 0 at good rates (see the dense best scores under Tasks), "
            "where a relative regret of hundreds of percent is a small absolute difference, "
            "and such cases dominate any mean.",
            "",
            *_summary_table(result["summary_builtin_tasks"], STRATEGIES),
        ]
    lines += [
        "",
        *_other_seeds_lines(result.get("other_seeds"), STRATEGIES),
        "## Per task: mean regret / median compute",
        "",
        "| task | " + " | ".join(STRATEGIES) + " |",
        "|---|" + "---|" * len(STRATEGIES),
    ]
    for task, by in result["per_task"].items():
        cells = [
            f"{pct(by[s]['mean_regret'])} / {by[s]['median_compute_r']:.1f} R" for s in STRATEGIES
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## adaptive, case by case",
        "",
        "Compute split: range test / first round (ASHA over the candidates) / later rounds "
        "(`refinement` in the JSON: a rate past an edge).",
        "",
        "`over seeds`: the regret of the chosen rate's mean score over every seed (see Other "
        "seeds; `diverged` when it diverged at one).",
        "",
        "| task | seed | chosen | dense best | regret | seed sd | compute | split | within "
        "| over seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = result["details"]
    across = {
        (c["task"], c["seed"], c["strategy"]): c
        for c in (result.get("other_seeds") or {}).get("runs", [])
    }
    for run in result["runs"]:
        if run["strategy"] != result["default_strategy"]:
            continue
        best = result["tasks"][run["task"]]["dense_best"][str(run["seed"])]
        split = details[f"{run['task']}/s{run['seed']}/{run['strategy']}"]["compute_breakdown"]
        other = across.get((run["task"], run["seed"], run["strategy"]))
        over = (
            "-"
            if other is None
            else (pct(other["regret"]) if other["regret"] is not None else "diverged")
        )
        lines.append(
            f"| {run['task']} | {run['seed']} | {_lr(run['chosen_lr'])} | {_lr(best['lr'])} | "
            f"{pct(run['regret'])} | {run['seed_sd']:.2%} | {run['compute_r']:.2f} R | "
            f"{split['range_test']:.2f} / {split['first_round']:.2f} / "
            f"{split['refinement']:.2f} | {'yes' if run['within_target'] else '**no**'} | "
            f"{over} |"
        )
    lines += [
        "",
        "## Short horizon: early rungs against final scores on the dense grid",
        "",
        "Spearman rank correlation of the first-rung score with the final score over every "
        "dense rate that reached the first rung (a rate that diverged later ranks last), mean "
        "over seeds; then the same among contenders only (dense rates within "
        "one decade of each seed's best: the comparisons early stopping actually has to get "
        "right) at the first and at the second rung; and the final regret of the rate that was "
        "best at the first rung (`-` when it diverged later).",
        "",
        "| task | first rung | Spearman, all rates | contenders, first rung | contenders, second "
        "rung | first-rung pick regret |",
        "|---|---|---|---|---|---|",
    ]
    for task, rho in result["short_horizon"].items():
        d = result["short_horizon_detail"][task]
        picks = ", ".join(pct(v) for v in d["first_rung_pick_regret_by_seed"])
        shown = "-" if rho is None else f"{rho:.2f}"
        lines.append(
            f"| {task} | {d['first_rung']} | {shown} ({_joined(d['spearman_by_seed'])}) | "
            f"{_joined(d['contenders_first_rung_by_seed'])} | "
            f"{_joined(d['contenders_second_rung_by_seed'])} | {picks} |"
        )
    low = low_first_rung(result["short_horizon_detail"])
    if low:
        lines += [
            "",
            f"Among contenders the first rung ranks poorly (mean Spearman below "
            f"{LOW_CORRELATION:g}) on {', '.join(low)}: `adaptive` therefore compares first "
            "at the second rung (minSteps x reductionFactor).",
        ]
    diagnostics = result["diagnostics"]
    lines += [
        "",
        "## Why `adaptive` and `asha` miss",
        "",
        "Attributed from the trials each sweep ran and the dense grid (a trial's rate is "
        "matched with the nearest dense rate, at most half a grid step away): *early "
        "stopping* when a rate next to a within-target dense rate was tried and cut at a "
        "rung; *placement* when no tried rate was next to one; *roughness* when such a rate "
        "ran fully and still scored worse.",
        "",
        "| task | seed | strategy | cause |",
        "|---|---|---|---|",
    ]
    for miss in diagnostics["misses"]:
        lines.append(f"| {miss['task']} | {miss['seed']} | {miss['strategy']} | {miss['cause']} |")
    suggestions = diagnostics["range_test_suggestions"]
    lines += [
        "",
        "## Range-test suggestions against the dense best",
        "",
        "log10(suggestion / dense-best rate) per case, from the range test adaptive ran "
        "(rangeTest runs the same one). `limit/10` is a tenth of the first rate where the "
        "range test diverged or climbed back above its starting loss; adaptive searches "
        "from 0.04 to 0.4 x that limit: the best rate was inside that window when the `limit/10` "
        "column lies between -0.6 and +0.4.",
        "",
        "| suggestion | mean abs log10 distance | within 2x of the best |",
        "|---|---|---|",
    ]
    for name, stats in suggestions["summary"].items():
        mean = "-" if stats["mean_abs_log10"] is None else f"{stats['mean_abs_log10']:.2f}"
        lines.append(f"| {name} | {mean} | {stats['within_2x']} of {stats['cases']} |")
    lines += [
        "",
        "| task | seed | dense best | valley | steepest | minimum | limit/10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in suggestions["cases"]:
        ratios = case["log10_ratio"]
        distances = " | ".join(
            "-" if ratios[k] is None else f"{ratios[k]:+.2f}"
            for k in ("valley", "steepest", "minimum", "limit/10")
        )
        lines.append(
            f"| {case['task']} | {case['seed']} | {_lr(case['dense_best_lr'])} | {distances} |"
        )
    lines += [
        "",
        "## Tasks and budgets",
        "",
        "minSteps = steps / 9 and reductionFactor 3 everywhere: rungs at R/9 and R/3, the "
        "three-level successive-halving ladder (a trial stopped at the first rung costs "
        "0.11 R). A full run is a few seconds on one CPU core, most of it process start-up.",
        "",
        "seed sd: relative spread over seeds of the final score at the rate with the best mean "
        "(each seed also draws its own data split). one-step regret: mean regret of the dense "
        f"rates one grid step (x{spacing:.2f}) either side of each seed's best, i.e. how rough "
        "the landscape is at the optimum.",
        "",
        "| task | what | range | steps | evalEvery | minSteps | rungs | dense best lr (score) "
        "by seed | seed sd | one-step regret by seed | why |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in result["tasks"].items():
        bests = ", ".join(f"{_lr(b['lr'])} ({b['score']:.3g})" for b in t["dense_best"].values())
        steps = ", ".join(pct(v) for v in t["neighbour_regret_by_seed"])
        lines.append(
            f"| {name} | {t['what']} | {t['range'][0]:g} .. {t['range'][1]:g} | {t['steps']} | "
            f"{t['evalEvery']} | {t['minSteps']} | {', '.join(map(str, t['rungs']))} | "
            f"{bests} | {t['seed_sd']:.2%} | {steps} | {t['why']} |"
        )
    checks = result["checks"]["deterministic_scores"]
    lines += [
        "",
        "## Method",
        "",
        f"- Ground truth: one `grid` sweep per (task, seed) over {dense} log-spaced rates "
        f"covering the task's 5-decade range (spacing 10^(5/{dense - 1}) = x{spacing:.3f}), "
        "every rate trained for the full budget; the best final validation loss at that seed "
        "is the reference.",
        "- Strategies run through `lrsweep.runtime.local.run_local` as a user would write "
        f"them: `grid` {conf['grid_points']} log-spaced rates; `random-2x` ceil(2 x adaptive's "
        "compute in R) log-uniform rates (the sweep's name, which seeds the draw, varies per "
        f"task and seed); `asha` {conf['asha_candidates']} log-spaced rates with the engine's "
        "successive halving (Ray Tune's cutoff, compared with earlier-launched trials, spread "
        "launch order); `rangeTest-valley` / `rangeTest-steepest` one range test and one full "
        "run at its suggestion; `adaptive` with its defaults "
        f"({defaults['candidates']} candidates in the {defaults['decades']:g}-decade range "
        f"below {defaults['top']:g} x the range test's limit, compared first at the second "
        f"rung, at least {defaults['finalists']} finalists trained to the full budget, 1 round "
        "past an edge when the best candidate sits there). "
        f"Every strategy sweep runs with parallelism {conf['strategy_parallelism']}, the "
        "resource's default (early stopping judges the first launch group as a cohort, so "
        "parallelism is part of the strategy).",
        "- Seed s of a case reaches the trial as `--seed s` (built-in trainer; flags win over "
        "the environment) or as the container env LRSWEEP_SEED (the user script).",
        "- seed sd: standard deviation over seeds of the final score at the rate with the best "
        "mean dense-grid score, divided by its mean.",
        f"- Determinism check: {checks['compared']} full runs of dense-grid rates inside the "
        f"strategies' sweeps scored exactly as the ground truth; "
        f"{len(checks['mismatches'])} mismatches.",
        "",
        "![regret against compute](search-efficiency.png)",
        "",
    ]
    return "\n".join(lines)


# --- plot -----------------------------------------------------------------------------------


def plot(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.search_efficiency import STRATEGIES

    figure, axes = plt.subplots(figsize=(8.5, 5.5))
    colors = plt.get_cmap("tab10")
    floor = 1e-4
    for i, strategy in enumerate(STRATEGIES):
        runs = [r for r in result["runs"] if r["strategy"] == strategy]
        xs = [r["compute_r"] for r in runs if r["regret"] is not None]
        ys = [max(floor, r["regret"]) for r in runs if r["regret"] is not None]
        axes.scatter(xs, ys, s=18, alpha=0.55, color=colors(i))
        m = result["summary"][strategy]
        if m["mean_regret"] is not None:
            axes.scatter(
                [m["median_compute_r"]],
                [max(floor, m["mean_regret"])],
                s=140,
                marker="D",
                edgecolors="black",
                color=colors(i),
                label=f"{strategy} ({m['within_target_share']:.0%} within target)",
            )
    axes.axhline(0.01, color="gray", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("compute (R = one full training run)")
    axes.set_ylabel(f"regret (floored at {floor:g})")
    axes.set_title("Regret vs compute per (task, seed); diamonds: median compute, mean regret")
    axes.legend(fontsize=8, loc="lower left")
    axes.grid(True, which="both", alpha=0.2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compact_json(value: Any, indent: str = "") -> str:
    """JSON with one line per value that fits in ~200 characters (runs, trials), so the
    results file stays small and diffs stay readable."""
    flat = json.dumps(value, allow_nan=False)
    if len(flat) + len(indent) <= 200 or not isinstance(value, dict | list) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {compact_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    items = [inner + compact_json(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"


def write_outputs(result: Mapping[str, Any], out: Path, stem: str) -> None:
    (out / f"{stem}.json").write_text(compact_json(result) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    plot(result, out / f"{stem}.png")


def _out_of(command: str) -> str:
    """The results directory a reproduce command writes to (--out, else the default)."""
    args = shlex.split(command)
    return args[args.index("--out") + 1] if "--out" in args[:-1] else "benchmarks/results"
