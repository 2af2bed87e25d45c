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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from benchmarks.search_efficiency import (
    EXIT_INTERRUPTED,
    FULL,
    QUICK_OUT,
    RESULTS,
    STOP,
    STRATEGY_PARALLELISM,
    BenchTask,
    Run,
    RunCache,
    Settings,
    SweepInterruptedError,
    cache_code,
    check_stopped,
    engine_fingerprint,
    ground_truths,
    interrupt,
    machine_line,
    numerics,
    portable_option,
    quick_settings,
    results_of,
    seed_spread,
    within_target,
)
from benchmarks.search_efficiency_report import best_score_spread, pct, titled

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


class Outcome(Protocol):
    """What a summary reads of a case."""

    @property
    def task(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def chosen_lr(self) -> float | None: ...
    @property
    def regret(self) -> float | None: ...
    @property
    def compute_r(self) -> float: ...
    @property
    def within(self) -> bool: ...


CaseT = TypeVar("CaseT", bound=Outcome)
U = TypeVar("U")
V = TypeVar("V")


def summarise_by(cases: Sequence[CaseT], key: Callable[[CaseT], int]) -> dict[str, Any]:
    """Per value of `key` (a parallelism, a ladder): share within target, median compute,
    mean regret; and how many (task, seed) chose the same rate at every value."""
    groups: dict[int, list[CaseT]] = {}
    for c in cases:
        groups.setdefault(key(c), []).append(c)
    per = {
        str(k): {
            "cases": len(runs),
            "within_target": sum(c.within for c in runs),
            "within_share": sum(c.within for c in runs) / len(runs),
            "median_compute_r": statistics.median(c.compute_r for c in runs),
            "mean_regret": statistics.fmean(c.regret for c in runs if c.regret is not None)
            if any(c.regret is not None for c in runs)
            else None,
        }
        for k, runs in sorted(groups.items())
    }
    choices: dict[tuple[str, int], set[float | None]] = {}
    for c in cases:
        choices.setdefault((c.task, c.seed), set()).add(c.chosen_lr)
    same = sum(len(rates) == 1 for rates in choices.values())
    return {"per": per, "same_choice": same, "case_count": len(choices)}


def summarise(cases: Sequence[Case]) -> dict[str, Any]:
    """`summarise_by` parallelism (its groups under "per_parallelism", as reported)."""
    summary = summarise_by(cases, lambda c: c.parallelism)
    return {"per_parallelism": summary.pop("per"), **summary}


@dataclass(frozen=True)
class Measured:
    """adaptive's run on one case of a variant (its `task` as run)."""

    task: BenchTask
    seed: int
    variant: int
    run: Run
    within: bool


def measure(
    settings: Settings,
    variants: Sequence[int],
    vary: Callable[[BenchTask, int], tuple[BenchTask, int]],
    *,
    tag: str,
    jobs: int,
    out: Path,
    workdir: Path,
) -> tuple[list[Measured], dict[str, Any]]:
    """`adaptive` on every (task, seed) of `settings` for each variant, which `vary` turns
    into the task to run and the parallelism to run it at; with what any report of them
    says (engine, seed sd, cache use). Ground truth is the benchmark's tasks' own."""
    fingerprint = engine_fingerprint()
    truths = ground_truths(
        settings, jobs=jobs, out=out, workdir=workdir / "truth", fresh=False, log=_say
    )
    spread = {
        task.name: seed_spread([truths[task.name, s] for s in settings.seeds])[1]
        for task in settings.tasks
    }
    cache = RunCache(out / "cache", cache_code(fingerprint))
    units = [(task, s, v) for v in variants for task in settings.tasks for s in settings.seeds]

    def one(unit: tuple[BenchTask, int, int]) -> Measured:
        task, seed, variant = unit
        ran, parallelism = vary(task, variant)
        # A directory per sweep: the local runner refuses two sweeps in one.
        sweep_dir = workdir / f"{tag}{variant}" / task.name / f"s{seed}"
        result, _ = cache.run(
            ran, seed, LABEL, SEARCH, truths[task.name, seed], sweep_dir, parallelism
        )
        within = within_target(result.regret, spread[task.name])
        _say(
            f"{tag}={variant} {task.name} s{seed}: lr {result.chosen_lr} compute "
            f"{result.compute_r:.2f} R within {within}"
        )
        return Measured(ran, seed, variant, result, within)

    measured = in_parallel(one, units, jobs)
    return measured, {
        "engine": fingerprint,
        "quick": settings.quick,
        "seeds": list(settings.seeds),
        "strategy": LABEL,
        "seed_sd": spread,
        # Another reading of the seed sd (search_efficiency_report.best_score_spread).
        "seed_sd_of_best_scores": best_score_spread(settings, truths),
        "cached_runs": len(cache.hits),
    }


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
    measured, common = measure(
        settings,
        parallelisms,
        lambda task, p: (task, p),
        tag="p",
        jobs=jobs,
        out=out,
        workdir=workdir,
    )
    cases = [
        Case(
            task=m.task.name,
            seed=m.seed,
            parallelism=m.variant,
            chosen_lr=m.run.chosen_lr,
            regret=m.run.regret,
            compute_r=m.run.compute_r,
            within=m.within,
            range_test=m.run.range_test,
        )
        for m in measured
    ]
    return {
        "command": command,
        **common,
        "parallelism": list(parallelisms),
        "summary": summarise(cases),
        "cases": [asdict(c) for c in cases],
    }


def _say(line: str) -> None:
    print(line, flush=True)


def in_parallel(one: Callable[[U], V], units: Sequence[U], jobs: int) -> list[V]:
    """`one` of each unit, `jobs` at a time, in order; on a failure or an interrupt, the
    sweeps under way stop their trials at their next decision."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            return results_of([pool.submit(one, unit) for unit in units])
        except BaseException:
            STOP.set()
            pool.shutdown(cancel_futures=True)
            raise


def standard_options(parser: argparse.ArgumentParser, *, jobs: str, quick: str) -> None:
    """--jobs, --quick, --out and --portable-numerics, as every benchmark of these cases
    takes them (with the help for the first two)."""
    parser.add_argument("--jobs", type=int, default=2, help=jobs)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=None, help="results and caches directory")
    portable_option(parser)


def results_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """OUT, created: --out, or the quick or the committed results directory (refusing a
    --jobs below 1)."""
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    out: Path = args.out or (QUICK_OUT if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_and_report(
    module: str,
    out: Path,
    go: Callable[[Path, str], dict[str, Any]],
    report: Callable[[Mapping[str, Any]], str],
    stem: str | None = None,
) -> None:
    """`go(workdir, command)`, in a temporary workdir, with `command` the shell line that
    reproduces this run of `benchmarks.<module>`; then OUT/<stem>.json (its result) and
    OUT/<stem>.md (`report` of it, also printed), `stem` being the module's unless named.
    Ctrl-C or SIGTERM exit with EXIT_INTERRUPTED and no report, saying that finished runs
    stay cached in `out`."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    command = shlex.join([".venv/bin/python", "-m", f"benchmarks.{module}", *sys.argv[1:]])
    try:
        with tempfile.TemporaryDirectory(prefix=f"lrsweep-{module}-") as tmp:
            result = go(Path(tmp), command)
        check_stopped()
    except (KeyboardInterrupt, SweepInterruptedError):
        print(f"interrupted: finished runs stay cached in {out / 'cache'}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    name = stem or module
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    text = report(result)
    (out / f"{name}.md").write_text(text)
    print(text)


def case_cell(case: Mapping[str, Any]) -> str:
    """A case in a report's per-case table: chosen / regret (miss) / compute."""
    if case["chosen_lr"] is None:
        return f"none / {case['compute_r']:.2f} R"
    return (
        f"{case['chosen_lr']:.4g} / {pct(case['regret'])}"
        f"{'' if case['within'] else ' (miss)'} / {case['compute_r']:.2f} R"
    )


def header(title: str, result: Mapping[str, Any], same: str) -> list[str]:
    """A report's title, the command that reproduces it, the engine and cache use, and `same`:
    what it shares with `search-efficiency.md`."""
    engine = result["engine"]
    return [
        *titled(title, result["command"]),
        "",
        f"Engine: commit `{engine['commit']}`, engine code sha256 `{engine['engine_sha256']}`; "
        f"{result['cached_runs']} of {len(result['cases'])} runs from the cache."
        f"{machine_line(engine)} {same}{_other_seeds(result)}",
        "",
    ]


def _other_seeds(result: Mapping[str, Any]) -> str:
    """Where a run is on other seeds than the benchmark's: which, and what that changes."""
    seeds = result.get("seeds")
    if not seeds or seeds == list(FULL.seeds) or result.get("quick"):
        return ""
    return (
        f" On seeds {', '.join(map(str, seeds))}, not the benchmark's: each case against the "
        "dense ground truth of its own seed, the seed sd over these seeds (as "
        "`benchmarks.holdout` reports them)."
    )


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
    lines += [f"| {p} | {summary_cells(per[p])} |" for p in ps]
    lines += per_case_table(result, ps, "parallelism", "p", "at every parallelism")
    return "\n".join(lines) + "\n"


def summary_cells(summary: Mapping[str, Any]) -> str:
    """One variant's summary in a report's table: within target | median compute | regret."""
    return (
        f"{summary['within_share']:.0%} ({summary['within_target']} of {summary['cases']}) | "
        f"{summary['median_compute_r']:.2f} R | {pct(summary['mean_regret'])}"
    )


def per_case_table(
    result: Mapping[str, Any], values: Sequence[str], key: str, short: str, every: str
) -> list[str]:
    """How often every variant (`values` of the cases' `key`, `short=value` in the columns)
    chose the same rate, then a row per (task, seed)."""
    summary = result["summary"]
    lines = [
        "",
        f"The same rate was chosen {every} in {summary['same_choice']} of "
        f"{summary['case_count']} cases.",
        "",
        "| task | seed | "
        + " | ".join(f"{short}={v}: chosen / regret / compute" for v in values)
        + " |",
        "|---|---|" + "---|" * len(values),
    ]
    table: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for c in result["cases"]:
        table.setdefault((c["task"], c["seed"]), {})[str(c[key])] = c
    for (task, seed), row in table.items():
        cells = " | ".join(case_cell(row[v]) for v in values)
        lines.append(f"| {task} | {seed} | {cells} |")
    return lines


class VariantRun(Protocol):
    """A benchmark's `run`: adaptive on every case for each of `values`."""

    def __call__(
        self,
        settings: Settings,
        values: Sequence[int],
        /,
        *,
        jobs: int,
        out: Path,
        workdir: Path,
        command: str,
    ) -> dict[str, Any]: ...


def variants_main(
    argv: Sequence[str] | None,
    *,
    module: str,
    description: str,
    option: str,
    option_help: str,
    default: Sequence[int],
    run_all: VariantRun,
    report: Callable[[Mapping[str, Any]], str],
) -> None:
    """The command line of a benchmark that runs adaptive on the search-efficiency cases for
    several values of `--option` (repeatable, at least 1): writes OUT/<module>.json and .md.

    `--seed S` (repeatable) runs those seeds instead of the benchmark's (their dense ground
    truth is computed where it is not cached, as `benchmarks.holdout` does) and writes
    OUT/<module>-S1-S2-....{json,md}, so that the report on the benchmark's seeds stays."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{option}", type=int, action="append", default=None, help=option_help)
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        default=None,
        help="a seed to run instead of the benchmark's (repeatable)",
    )
    standard_options(parser, jobs="sweeps at once", quick="the smoke settings")
    args = parser.parse_args(argv)
    out = results_dir(parser, args)
    values = sorted(set(getattr(args, option) or default))
    if values[0] < 1:
        parser.error(f"--{option} must be at least 1")
    settings = numerics(args, quick_settings() if args.quick else FULL)
    stem = None
    if args.seed:
        seeds = tuple(sorted(set(args.seed)))
        settings = replace(settings, seeds=seeds)
        stem = "-".join([module, *map(str, seeds)])
    run_and_report(
        module,
        out,
        lambda workdir, command: run_all(
            settings, values, jobs=args.jobs, out=out, workdir=workdir, command=command
        ),
        report,
        stem,
    )


def main(argv: Sequence[str] | None = None) -> None:
    variants_main(
        argv,
        module=STEM,
        description=(__doc__ or "").splitlines()[0],
        option="parallelism",
        option_help=f"a parallelism to run at (repeatable; default 2 and {STRATEGY_PARALLELISM})",
        default=(2, STRATEGY_PARALLELISM),
        run_all=run,
        report=markdown,
    )


if __name__ == "__main__":
    main()
