"""The search across search ranges: does `adaptive` find the rate whatever range a user gives?

    .venv/bin/python -m benchmarks.spans --set tuning|heldout [--jobs 2] [--seeds 5]

The suite (`benchmarks.suite`) sweeps every task over one range, 1e-5..3. A user writes their
own `search.min` and `search.max`, and the range test, the first round's candidates and the
refinement all follow it. This benchmark sweeps all 18 of the suite's tasks with `adaptive`
over several ranges, scored like the suite (regret against the dense grid over 1e-5..2.6,
within max(1%, seed sd); a rate above the grid is trained and scored as well).

The ranges were declared before any engine change was judged on them: the `tuning` spans are
the ones the change was made on (1e-5..1 is the API's default range), the `heldout` spans are
measured once, at the end. Report: benchmarks/results/spans-SET.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.suite import runs
from benchmarks.suite.__main__ import (
    CACHE,
    EIGHTEEN,
    _commit,
    _stores,
    _worker_init,
    case_record,
    dense_truth,
    machine,
    render,
    score_cases,
    scored,
    summary,
)
from benchmarks.suite.tasks import BY_NAME

RESULTS = Path(__file__).resolve().parent / "results"
SPANS: dict[str, tuple[tuple[float, float], ...]] = {
    "tuning": ((1e-5, 3.0), (1e-5, 1.0), (1e-5, 10.0), (1e-6, 10.0)),
    "heldout": ((1e-4, 10.0), (1e-6, 1.0), (1e-4, 1.0)),
}


def label(span: tuple[float, float]) -> str:
    return f"{span[0]:g}..{span[1]:g}"


def case(name: str, seed: int, spans: Sequence[tuple[float, float]], cache: Path) -> dict[str, Any]:
    """Ground truth and `adaptive` over each span on one (task, seed)."""
    task = BY_NAME[name]
    store, opened = _stores(task, cache)
    truth = dense_truth(store(seed))
    results = []
    for span in spans:
        search = {"min": span[0], "max": span[1]}
        results.append(scored(runs.engine(task, seed, store, label(span), search)[0], store(seed)))
    for s in opened.values():
        s.save()
    return case_record(name, seed, truth, results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spans",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--set", choices=tuple(SPANS), required=True)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per task (5)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    spans = SPANS[args.set]
    tasks = [t.name for t in EIGHTEEN]
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
        futures = [pool.submit(case, t, s, spans, CACHE) for t in tasks for s in range(args.seeds)]
        cases = [f.result() for f in futures]
    score_cases(cases)
    for c in cases:
        del c["truth"]  # the dense grid's scores: regenerable, and in the suite's reports
    report = {
        "set": args.set,
        "command": "python -m benchmarks.spans "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "commit": _commit(),
        "tasks": tasks,
        "seeds": f"0-{args.seeds - 1}",
        "summary": summary(cases),
        "cases": cases,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"spans-{args.set}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = render(report, f"The search across search ranges: the {args.set} spans", "range")
    (args.out / f"spans-{args.set}.md").write_text(text)
    print(text.split("## Cases")[0])


if __name__ == "__main__":
    main()
