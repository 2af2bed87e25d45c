"""adaptive at several `parallelism` values, on the search-efficiency benchmark's cases.

The search-efficiency benchmark runs every strategy at the resource's default parallelism
(4). With fewer trial slots `adaptive` cannot judge its whole first round as one cohort
(its paused leaders would hold every slot: `strategies.cohort`), so a candidate launched
later faces only the trials before it and more candidates train to the full budget. This
runs `adaptive` on every (task, seed) of that benchmark at each parallelism, against the
same ground truth and tolerance, and writes OUT/parallelism.json and OUT/parallelism.md:

    .venv/bin/python -m benchmarks.parallelism --jobs 2

Ground truth and finished runs come from, and go to, the search-efficiency caches in OUT
(`ground-truth/`, `cache/`), so the default parallelism's runs are the benchmark's own when
the engine is unchanged. `--quick` runs the search-efficiency smoke settings instead.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.search_efficiency import (
    EXIT_INTERRUPTED,
    FULL,
    QUICK_OUT,
    RESULTS,
    STOP,
    STRATEGY_PARALLELISM,
    BenchTask,
    RunCache,
    Settings,
    SweepInterruptedError,
    cache_code,
    check_stopped,
    engine_fingerprint,
    ground_truths,
    interrupt,
    quick_settings,
    results_of,
    seed_spread,
    within_target,
)
from benchmarks.search_efficiency_report import best_score_spread, pct

STEM = "parallelism"
LABEL = "adaptive"
SEARCH: Mapping[str, Any] = {"strategy": "adaptive"}


@dataclass(frozen=True)
class Case:
    task: str
    seed: int
    parallelism: int
    chosen_lr: float | None
    regret: float | None
    compute_r: float
    within: bool
    # The range test's suggestions and adaptive's bounds: what `benchmarks.replay` starts from.
    range_test: dict[str, float | None] | None = None


def summarise(cases: Sequence[Case]) -> dict[str, Any]:
    """Per parallelism: share within target, median compute, mean regret; and how many
    (task, seed) chose the same rate at every parallelism."""
    by_p: dict[int, list[Case]] = {}
    for c in cases:
        by_p.setdefault(c.parallelism, []).append(c)
    per = {
        str(p): {
            "cases": len(runs),
            "within_target": sum(c.within for c in runs),
            "within_share": sum(c.within for c in runs) / len(runs),
            "median_compute_r": statistics.median(c.compute_r for c in runs),
            "mean_regret": statistics.fmean(c.regret for c in runs if c.regret is not None)
            if any(c.regret is not None for c in runs)
            else None,
        }
        for p, runs in sorted(by_p.items())
    }
    choices: dict[tuple[str, int], set[float | None]] = {}
    for c in cases:
        choices.setdefault((c.task, c.seed), set()).add(c.chosen_lr)
    same = sum(len(rates) == 1 for rates in choices.values())
    return {"per_parallelism": per, "same_choice": same, "case_count": len(choices)}


def run(
    settings: Settings,
    parallelisms: Sequence[int],
    *,
    jobs: int,
    out: Path,
    workdir: Path,
    command: str,
) -> dict[str, Any]:
    """`adaptive` on every (task, seed) of `settings` at each parallelism; `command` is what
    reproduces the result."""
    fingerprint = engine_fingerprint()
    truths = ground_truths(
        settings, jobs=jobs, out=out, workdir=workdir / "truth", fresh=False, log=_say
    )
    spread = {
        task.name: seed_spread([truths[task.name, s] for s in settings.seeds])[1]
        for task in settings.tasks
    }
    cache = RunCache(out / "cache", cache_code(fingerprint))
    units = [
        (task, seed, p) for p in parallelisms for task in settings.tasks for seed in settings.seeds
    ]

    def one(unit: tuple[BenchTask, int, int]) -> Case:
        task, seed, p = unit
        # A directory per sweep: the local runner refuses two sweeps in one.
        sweep_dir = workdir / f"p{p}" / task.name / f"s{seed}"
        result, _ = cache.run(task, seed, LABEL, SEARCH, truths[task.name, seed], sweep_dir, p)
        case = Case(
            task=task.name,
            seed=seed,
            parallelism=p,
            chosen_lr=result.chosen_lr,
            regret=result.regret,
            compute_r=result.compute_r,
            within=within_target(result.regret, spread[task.name]),
            range_test=result.range_test,
        )
        _say(
            f"p={p} {task.name} s{seed}: lr {case.chosen_lr} compute {case.compute_r:.2f} R "
            f"within {case.within}"
        )
        return case

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            cases = results_of([pool.submit(one, unit) for unit in units])
        except BaseException:
            STOP.set()  # sweeps in other threads stop their trials at their next decision
            pool.shutdown(cancel_futures=True)
            raise
    return {
        "command": command,
        "engine": fingerprint,
        "quick": settings.quick,
        "strategy": LABEL,
        "parallelism": list(parallelisms),
        "seed_sd": spread,
        # Another reading of the seed sd (search_efficiency_report.best_score_spread).
        "seed_sd_of_best_scores": best_score_spread(settings, truths),
        "summary": summarise(cases),
        "cases": [asdict(c) for c in cases],
        "cached_runs": len(cache.hits),
    }


def _say(line: str) -> None:
    print(line, flush=True)


def header(title: str, result: Mapping[str, Any], same: str) -> list[str]:
    """A report's title, the command that reproduces it, the engine and cache use, and `same`:
    what it shares with `search-efficiency.md`."""
    engine = result["engine"]
    return [
        f"# {title}",
        "",
        "Reproduce (from the repository root):",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        f"Engine: commit `{engine['commit']}`, engine code sha256 `{engine['engine_sha256']}`; "
        f"{result['cached_runs']} of {len(result['cases'])} runs from the cache. {same}",
        "",
    ]


def markdown(result: Mapping[str, Any]) -> str:
    per = result["summary"]["per_parallelism"]
    ps = [str(p) for p in result["parallelism"]]
    lines = [
        *header(
            "adaptive at several parallelism values",
            result,
            "Same cases, ground truth and tolerance as `search-efficiency.md` (regret <= "
            "max(1%, seed sd)).",
        ),
        "| parallelism | within target | median compute | mean regret |",
        "|---|---|---|---|",
    ]
    for p in ps:
        s = per[p]
        lines.append(
            f"| {p} | {s['within_share']:.0%} ({s['within_target']} of {s['cases']}) | "
            f"{s['median_compute_r']:.2f} R | {pct(s['mean_regret'])} |"
        )
    summary = result["summary"]
    lines += [
        "",
        f"The same rate was chosen at every parallelism in {summary['same_choice']} of "
        f"{summary['case_count']} cases.",
        "",
        "| task | seed | " + " | ".join(f"p={p}: chosen / regret / compute" for p in ps) + " |",
        "|---|---|" + "---|" * len(ps),
    ]
    table: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for c in result["cases"]:
        table.setdefault((c["task"], c["seed"]), {})[str(c["parallelism"])] = c
    for (task, seed), row in table.items():
        cells = [
            f"{row[p]['chosen_lr']:.4g} / {pct(row[p]['regret'])}"
            f"{'' if row[p]['within'] else ' (miss)'} / {row[p]['compute_r']:.2f} R"
            if row[p]["chosen_lr"] is not None
            else f"none / {row[p]['compute_r']:.2f} R"
            for p in ps
        ]
        lines.append(f"| {task} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--parallelism",
        type=int,
        action="append",
        default=None,
        help=f"a parallelism to run at (repeatable; default 2 and {STRATEGY_PARALLELISM})",
    )
    parser.add_argument("--jobs", type=int, default=2, help="sweeps at once")
    parser.add_argument("--quick", action="store_true", help="the smoke settings")
    parser.add_argument("--out", type=Path, default=None, help="results and caches directory")
    args = parser.parse_args(argv)
    parallelisms = sorted(set(args.parallelism or (2, STRATEGY_PARALLELISM)))
    if args.jobs < 1 or parallelisms[0] < 1:
        parser.error("--jobs and --parallelism must be at least 1")
    settings = quick_settings() if args.quick else FULL
    out: Path = args.out or (QUICK_OUT if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="lrsweep-par-") as tmp:
            command = shlex.join(
                [".venv/bin/python", "-m", "benchmarks.parallelism", *sys.argv[1:]]
            )
            result = run(
                settings, parallelisms, jobs=args.jobs, out=out, workdir=Path(tmp), command=command
            )
        check_stopped()
    except (KeyboardInterrupt, SweepInterruptedError):
        print(f"interrupted: finished runs stay cached in {out / 'cache'}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    (out / f"{STEM}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{STEM}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
