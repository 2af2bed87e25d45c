"""A user who writes only `budget.steps`: what the budget's defaults make of the search.

    .venv/bin/python -m benchmarks.budget_defaults [--jobs 2] [--seeds 5]

Every task of the search benchmark's suite (all three sets: no engine parameter is chosen
here), `adaptive` swept with three budgets:

- the suite's: steps, evalEvery steps/20, minSteps steps/10 (the regime the engine was
  tuned and measured in);
- steps only, with fixed defaults (minSteps 300, evalEvery 100: what LRSweep did before its
  defaults followed steps), written out so that both are measured in one run;
- steps only: whatever the API's defaults are now.

Each trial reads curves evaluated where its sweep evaluates (`curves.Store`, cached in
out/suite/curves), scored like the suite (regret against the dense grid, within max(1%, seed
sd)). A document the API refuses is counted as refused, with the message the user gets.
Report: benchmarks/results/budget-defaults.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchmarks.suite import curves, runs
from benchmarks.suite.__main__ import (
    CACHE,
    EIGHTEEN,
    REGRET_CAP,
    _worker_init,
    case_record,
    dense_truth,
    score_cases,
    scored,
)
from benchmarks.suite.tasks import BY_NAME, Task
from lrsweep.api import LRSweep, format_validation_error

RESULTS = Path(__file__).resolve().parent / "results"
SUITE = "suite's budget"
FIXED = "steps only, fixed defaults (before)"
STEPS_ONLY = "steps only (now)"


def budget(variant: str, task: Task) -> dict[str, Any] | None:
    if variant == SUITE:
        return None
    if variant == FIXED:
        return {"steps": task.steps, "minSteps": 300, "evalEvery": 100}
    return {"steps": task.steps}


def _sweep(task: Task, seed: int, label: str, doc: LRSweep, cache: Path) -> runs.Result:
    """`adaptive` as `doc` says, on curves evaluated every budget.evalEvery steps."""
    opened: dict[int, curves.Store] = {}

    def store(s: int) -> curves.Store:
        if s not in opened:
            opened[s] = curves.Store(task, s, cache, eval_every=doc.spec.budget.evalEvery)
        return opened[s]

    result, _ = runs.engine(task, seed, store, label, {}, doc)
    for each in opened.values():
        each.save()
    return result


def case(name: str, seed: int, cache: Path) -> dict[str, Any]:
    """Ground truth and `adaptive` under each budget on one (task, seed)."""
    task = BY_NAME[name]
    truth_store = curves.Store(task, seed, cache)
    truth = dense_truth(truth_store)
    results: list[dict[str, Any]] = []
    for variant in (SUITE, FIXED, STEPS_ONLY):
        try:
            doc = runs.sweep_doc(task, seed, {}, budget=budget(variant, task))
        except ValidationError as error:
            message = format_validation_error(error)
            results.append({"strategy": variant, "rate": None, "score": None, "refused": message})
            continue
        result = _sweep(task, seed, variant, doc, cache)
        budget_used = {
            "min_steps": doc.spec.budget.minSteps,
            "eval_every": doc.spec.budget.evalEvery,
        }
        results.append({**scored(result, truth_store), **budget_used})
    truth_store.save()
    return case_record(name, seed, truth, results)


def summary(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for variant in (SUITE, FIXED, STEPS_ONLY):
        results = [r for c in cases for r in c["results"] if r["strategy"] == variant]
        ran = [r for r in results if "refused" not in r]
        regrets = [r["regret"] if r["regret"] is not None else float("inf") for r in ran]
        rows.append(
            {
                "budget": variant,
                "cases": len(results),
                "refused": len(results) - len(ran),
                "within": sum(r["within"] for r in ran),
                "median_r": statistics.median(r["compute_r"] for r in ran) if ran else None,
                "mean_regret": statistics.fmean(regrets) if ran else None,
                "above_cap": sum(g > REGRET_CAP for g in regrets),
            }
        )
    return rows


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| budget | refused | within tolerance | median compute | mean regret | cases > +15% |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ran = row["cases"] - row["refused"]
        median = "-" if row["median_r"] is None else f"{row['median_r']:.2f} R"
        mean = "-" if row["mean_regret"] is None else f"{row['mean_regret']:+.1%}"
        lines.append(
            f"| {row['budget']} | {row['refused']} | {row['within']} of {ran} | {median} | "
            f"{mean} | {row['above_cap']} |"
        )
    return lines


def render(report: Mapping[str, Any]) -> str:
    cases = report["case_list"]
    everywhere = [c for c in cases if not any("refused" in r for r in c["results"])]
    lines = [
        "# A user who writes only budget.steps",
        "",
        f"`{report['command']}`; engine at {report['commit']}; {report['cases']} cases "
        f"(the suite's {len(report['tasks'])} tasks, seeds {report['seeds']}).",
        "",
        *_table(report["summary"]),
        "",
        f"The {len(everywhere)} cases no budget was refused on:",
        "",
        *_table(summary(everywhere)),
    ]
    refusals = sorted({r["refused"] for c in cases for r in c["results"] if "refused" in r})
    if refusals:
        lines += ["", "What a refused document was told:", ""]
        lines += [f"- {message}" for message in refusals]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    from benchmarks.suite.__main__ import _commit

    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget_defaults")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    tasks = [t.name for t in EIGHTEEN]
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
        futures = [pool.submit(case, t, s, CACHE) for t in tasks for s in range(args.seeds)]
        cases = [f.result() for f in futures]
    score_cases(cases)
    for c in cases:
        del c["truth"]  # the dense grid's scores: regenerable, and in the suite's reports
    report = {
        "command": "python -m benchmarks.budget_defaults "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": _commit(),
        "tasks": tasks,
        "seeds": f"0-{args.seeds - 1}",
        "cases": len(cases),
        "summary": summary(cases),
        "case_list": cases,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget-defaults.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "budget-defaults.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
