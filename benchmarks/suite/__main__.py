"""Run the search benchmark on the task suite's tuning set or a held-out set.

    .venv/bin/python -m benchmarks.suite --set tuning|heldout|fresh [--jobs 2] [--seeds 5]
        [--task NAME]

Per (task, seed): the ground truth (full runs at 37 dense rates, sqrt(2) apart over
1e-5..2.6), then every strategy and peer (`benchmarks.suite.runs`), scored by regret: the
chosen rate's full-run score at that seed over the best dense score there, minus 1 (best /
score - 1 for a metric maximized). A case is within tolerance when its regret is at most
max(1%, seed sd), the relative spread over seeds of the scores at the dense rate with the
best mean. Curves are cached in out/suite/curves (regenerable); the report goes to
benchmarks/results/suite/SET.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.suite import curves, runs
from benchmarks.suite.tasks import BY_NAME, FRESH, HELDOUT, RESERVE, TUNING, UNSEEN, Task

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "out" / "suite" / "curves"
RESULTS = ROOT / "benchmarks" / "results" / "suite"
TOLERANCE = 0.01
REGRET_CAP = 0.15  # the target: no case above +15%
ENGINE = {
    "adaptive": {},
    "grid-8": {"strategy": "grid", "candidates": 8},
    "random-8": {"strategy": "random", "candidates": 8},
    "asha-16": {"strategy": "asha", "candidates": 16},
}
SETS = {
    "tuning": TUNING,
    "heldout": HELDOUT,
    "fresh": FRESH,
    "unseen": UNSEEN,
    "reserve": RESERVE,
}
# The tasks the spans and budget benchmarks were declared over: the three sets before UNSEEN.
EIGHTEEN = TUNING + HELDOUT + FRESH
OPTUNA = [(pruner, r) for pruner in ("sha", "hyperband") for r in (4.0, 8.0)]


def _worker_init() -> None:
    import torch

    from lrsweep_trainer.numerics import use_portable_numerics

    torch.set_num_threads(1)
    use_portable_numerics()


def _stores(
    task: Task, cache: Path
) -> tuple[Callable[[int], curves.Store], dict[int, curves.Store]]:
    """A store per seed, opened when first asked for, and the ones opened so far."""
    opened: dict[int, curves.Store] = {}

    def store(seed: int) -> curves.Store:
        if seed not in opened:
            opened[seed] = curves.Store(task, seed, cache)
        return opened[seed]

    return store, opened


def case(name: str, seed: int, cache: Path) -> dict[str, Any]:
    """Ground truth and every strategy on one (task, seed)."""
    task = BY_NAME[name]
    store, opened = _stores(task, cache)
    started = time.monotonic()
    truth = dense_truth(store(seed))
    results: list[runs.Result] = []
    for label, search in ENGINE.items():
        results.append(runs.engine(task, seed, store, label, search)[0])
    for pruner, budget in OPTUNA:
        results.append(runs.optuna_run(task, seed, store(seed), pruner, budget))
    results.append(runs.lr_finder_run(task, seed))
    kept = [scored(r, store(seed)) for r in results]
    for s in opened.values():
        s.save()
    return {
        **case_record(name, seed, truth, kept),
        "seconds": round(time.monotonic() - started, 1),
    }


def dense_truth(store: curves.Store) -> dict[float, float | None]:
    """The full-run score at each dense rate (None where the run diverged or failed)."""
    task = store.task
    return {r: store.train(r).final(task.metric, task.steps) for r in curves.DENSE}


def scored(result: runs.Result, store: curves.Store) -> dict[str, Any]:
    """A result as the reports keep it, its score the full run at its rate (`store`: the
    case's seed)."""
    task = store.task
    rate = result.rate
    return {
        "strategy": result.strategy,
        "rate": rate,
        "score": None if rate is None else store.train(rate).final(task.metric, task.steps),
        "compute_r": round(result.compute_r, 3),
        "trials": result.trials,
        "note": result.note,
    }


def case_record(
    name: str, seed: int, truth: Mapping[float, float | None], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """One (task, seed) as the reports keep it: the dense grid's scores and each result."""
    return {
        "task": name,
        "seed": seed,
        "truth": {repr(r): v for r, v in truth.items()},
        "results": results,
    }


def oracle_case(name: str, seed: int, centre: float, cache: Path) -> dict[str, Any]:
    task = BY_NAME[name]
    store = curves.Store(task, seed, cache)
    rates = runs.oracle(centre)
    finals = {r: store.train(r).final(task.metric, task.steps) for r in rates}
    store.save()
    rate = runs.best_rate(finals, task.goal)
    return {
        "strategy": "oracle-4R",
        "rate": rate,
        "score": None if rate is None else finals[rate],
        "compute_r": float(len(rates)),
        "trials": len(rates),
        "note": f"centred on {centre:g}",
    }


def regret(score: float | None, best: float, goal: str) -> float | None:
    if score is None or not math.isfinite(score) or score <= 0 or best <= 0:
        return None
    return best / score - 1 if goal == "maximize" else score / best - 1


def seed_sd(truths: Sequence[Mapping[float, float | None]], goal: str) -> float:
    rate = runs.mean_best(truths, goal)
    if rate is None or len(truths) < 2:
        return 0.0
    values = [t[rate] for t in truths]
    known = [v for v in values if v is not None]
    return statistics.stdev(known) / statistics.fmean(known)


def score_cases(cases: list[dict[str, Any]]) -> None:
    """Add best, tolerance, regret and within to every case's results, in place."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        by_task.setdefault(c["task"], []).append(c)
    for name, group in by_task.items():
        task = BY_NAME[name]
        truths = [{float(r): v for r, v in c["truth"].items()} for c in group]
        sd = seed_sd(truths, task.goal)
        for c, truth in zip(group, truths, strict=True):
            best_rate = runs.best_rate(truth, task.goal)
            assert best_rate is not None, f"{name} seed {c['seed']}: no dense rate finished"
            best = truth[best_rate]
            assert best is not None
            c["best_rate"], c["best"], c["tolerance"] = best_rate, best, max(TOLERANCE, sd)
            for r in c["results"]:
                r["regret"] = regret(r["score"], best, task.goal)
                r["within"] = r["regret"] is not None and r["regret"] <= c["tolerance"]


def summary(cases: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        for r in c["results"]:
            rows.setdefault(r["strategy"], []).append(r)
    out = []
    for strategy, results in rows.items():
        regrets = [r["regret"] if r["regret"] is not None else math.inf for r in results]
        out.append(
            {
                "strategy": strategy,
                "cases": len(results),
                "within": sum(r["within"] for r in results),
                "median_r": statistics.median(r["compute_r"] for r in results),
                "mean_regret": statistics.fmean(regrets),
                "max_regret": max(regrets),
                "above_cap": sum(g > REGRET_CAP for g in regrets),
            }
        )
    return sorted(out, key=lambda row: row["mean_regret"])


def _pct(value: float) -> str:
    return "failed" if not math.isfinite(value) else f"{value:+.1%}"


def render(report: Mapping[str, Any], title: str = "", column: str = "strategy") -> str:
    """The report as Markdown: the summary by `column` (what each result's "strategy" names),
    then every case."""
    heading = title or f"Search benchmark: the {report['set']} set"
    lines = [
        f"# {heading}",
        "",
        f"`{report['command']}`  ",
        f"{report['machine']}; engine at {report['commit']}; {len(report['cases'])} cases "
        f"({', '.join(report['tasks'])}; seeds {report['seeds']}).",
        "",
        f"| {column} | within tolerance | median compute | mean regret | worst | cases > +15% |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["summary"]:
        lines.append(
            f"| {row['strategy']} | {row['within']} of {row['cases']} | "
            f"{row['median_r']:.2f} R | {_pct(row['mean_regret'])} | "
            f"{_pct(row['max_regret'])} | {row['above_cap']} |"
        )
    lines += ["", "## Cases", ""]
    names = [row["strategy"] for row in report["summary"]]
    lines.append("| task | seed | dense best | tolerance | " + " | ".join(names) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(names))
    for c in report["cases"]:
        by = {r["strategy"]: r for r in c["results"]}
        cells = []
        for name in names:
            r = by[name]
            mark = "" if r["within"] else " ✗"
            rate = "-" if r["rate"] is None else f"{r['rate']:.3g}"
            regret_text = "-" if r["regret"] is None else f"{r['regret']:+.1%}"
            cells.append(f"{rate} {regret_text}{mark}")
        lines.append(
            f"| {c['task']} | {c['seed']} | {c['best_rate']:.3g} ({c['best']:.4g}) | "
            f"{c['tolerance']:.1%} | " + " | ".join(cells) + " |"
        )
    notes = [
        f"- {c['task']} seed {c['seed']}, {r['strategy']}: {r['note']}"
        for c in report["cases"]
        for r in c["results"]
        if r["note"] and r["strategy"] == "adaptive"
    ]
    if notes:
        lines += ["", "## Notes from adaptive", "", *notes]
    return "\n".join(lines) + "\n"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch_version()}"


def torch_version() -> str:
    import torch

    return str(torch.__version__)


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "operator"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out.stdout.strip() + (" (engine modified)" if dirty else "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--set", choices=tuple(SETS), required=True)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per task (5)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--task",
        action="append",
        choices=sorted(BY_NAME),
        help="only this task (repeatable); the report goes to out/suite",
    )
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    chosen = SETS[args.set]
    if args.task:
        chosen = tuple(t for t in chosen if t.name in args.task)
        if not chosen:
            parser.error(f"none of {args.task} is in the {args.set} set")
    out = RESULTS if not args.task else ROOT / "out" / "suite"
    seeds = list(range(args.seeds))
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
        futures = [pool.submit(case, t.name, s, args.cache) for t in chosen for s in seeds]
        cases = []
        for f in futures:
            cases.append(f.result())
            c = cases[-1]
            print(f"{c['task']} seed {c['seed']}: {c['seconds']} s", file=sys.stderr)
        oracles = []
        for t in chosen:
            group = [c for c in cases if c["task"] == t.name]
            for c in group:
                others = [{float(r): v for r, v in o["truth"].items()} for o in group if o is not c]
                centre = runs.mean_best(others, t.goal)
                assert centre is not None
                oracles.append((c, pool.submit(oracle_case, t.name, c["seed"], centre, args.cache)))
        for c, f in oracles:
            c["results"].append(f.result())
    score_cases(cases)
    report = {
        "set": args.set,
        "command": "python -m benchmarks.suite "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "commit": _commit(),
        "tasks": [t.name for t in chosen],
        "seeds": f"0-{args.seeds - 1}",
        "minutes": round((time.monotonic() - started) / 60, 1),
        "summary": summary(cases),
        "cases": cases,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.set}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.set}.md").write_text(render(report))
    print(render(report).split("## Cases")[0])


if __name__ == "__main__":
    main()
