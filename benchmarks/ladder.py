"""adaptive on longer rung ladders than the search-efficiency benchmark's, on its cases.

The benchmark's budgets start their ladder at minSteps = steps / 9, so with reductionFactor
3 `adaptive` compares trials once, at a third of the run. Users' budgets often compare more
than once: the API's default (3000 steps from 300 by 3) compares at 900 and 2700. This runs
`adaptive` (defaults, parallelism 4) on every (task, seed) of the benchmark with minSteps =
steps / D for each divisor D (rounded to an evaluation by the engine, as any budget's rungs
are), against the same ground truth and tolerance, and writes OUT/ladder.json and
OUT/ladder.md:

    .venv/bin/python -m benchmarks.ladder --jobs 2

D = 9 is the benchmark's own ladder (its runs come from the cache when the engine is
unchanged); D = 10 has the API default's proportions (compares at 0.3 and 0.9 of the run);
D = 27 compares at a ninth and a third, after a shorter range test (the range test lasts
minSteps, at least 100 steps but at most the first comparison). A full run's score does
not depend on minSteps, so the ground truth is the benchmark's. `--quick` runs the
search-efficiency smoke settings instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.parallelism import (
    header,
    measure,
    per_case_table,
    summarise_by,
    summary_cells,
    variants_main,
)
from benchmarks.search_efficiency import (
    STRATEGY_PARALLELISM,
    BenchTask,
    Settings,
)
from lrsweep.engine import strategies

STEM = "ladder"
DIVISORS = (9, 10, 27)
BENCHMARK_DIVISOR = 9  # the search-efficiency tasks' minSteps = steps / 9


@dataclass(frozen=True)
class Case:
    task: str
    seed: int
    divisor: int
    comparisons: list[int]  # the rungs adaptive compares at (all but the first)
    chosen_lr: float | None
    regret: float | None
    compute_r: float
    within: bool


def laddered(task: BenchTask, divisor: int) -> BenchTask:
    """`task` with its ladder starting at steps / divisor."""
    return replace(task, min_steps=max(1, round(task.steps / divisor)))


def run(
    settings: Settings,
    divisors: Sequence[int],
    *,
    jobs: int,
    out: Path,
    workdir: Path,
    command: str,
) -> dict[str, Any]:
    """`adaptive` on every (task, seed) of `settings` for each ladder; `command` is what
    reproduces the result."""
    measured, common = measure(
        settings,
        divisors,
        lambda task, d: (laddered(task, d), STRATEGY_PARALLELISM),
        tag="D",
        jobs=jobs,
        out=out,
        workdir=workdir,
    )
    cases = [
        Case(
            task=m.task.name,
            seed=m.seed,
            divisor=m.variant,
            comparisons=m.task.rungs[1:],
            chosen_lr=m.run.chosen_lr,
            regret=m.run.regret,
            compute_r=m.run.compute_r,
            within=m.within,
        )
        for m in measured
    ]
    return {
        "command": command,
        **common,
        "finalists": strategies.FINALISTS,
        "divisors": list(divisors),
        "summary": summarise_by(cases, lambda c: c.divisor),
        "cases": [asdict(c) for c in cases],
    }


def markdown(result: Mapping[str, Any]) -> str:
    per = result["summary"]["per"]
    ds = [str(d) for d in result["divisors"]]
    comparisons: dict[str, set[str]] = {}
    for c in result["cases"]:
        steps = ", ".join(map(str, c["comparisons"])) or "none"
        comparisons.setdefault(str(c["divisor"]), set()).add(f"{c['task']}: {steps}")
    lines = [
        *header(
            "adaptive on longer rung ladders",
            result,
            "Same cases, ground truth and tolerance as `search-efficiency.md` (regret <= "
            "max(1%, seed sd)); minSteps = steps / D.",
        ),
        "| D | within target | median compute | mean regret | compares at (steps) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {d} | {summary_cells(per[d])} | {'; '.join(sorted(comparisons[d]))} |" for d in ds
    ]
    lines += per_case_table(result, ds, "divisor", "D", "with every ladder")
    if str(BENCHMARK_DIVISOR) in ds:
        agree = same_as(result["cases"], BENCHMARK_DIVISOR)
        lines += [
            "",
            f"The same rate as with the benchmark's ladder (D = {BENCHMARK_DIVISOR}): "
            + "; ".join(
                f"D = {d} in {agree[int(d)]} of {per[d]['cases']} cases"
                for d in ds
                if int(d) != BENCHMARK_DIVISOR
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def same_as(cases: Sequence[Mapping[str, Any]], reference: int) -> dict[int, int]:
    """Per divisor, in how many (task, seed) it chose the rate the `reference` ladder did."""
    chosen = {(c["task"], c["seed"]): c["chosen_lr"] for c in cases if c["divisor"] == reference}
    agree: dict[int, int] = {}
    for c in cases:
        same = chosen.get((c["task"], c["seed"]), object()) == c["chosen_lr"]
        agree[c["divisor"]] = agree.get(c["divisor"], 0) + same
    return agree


def main(argv: Sequence[str] | None = None) -> None:
    variants_main(
        argv,
        module=STEM,
        description=(__doc__ or "").splitlines()[0],
        option="divisor",
        option_help="minSteps = steps / D (repeatable; default "
        + ", ".join(map(str, DIVISORS))
        + ")",
        default=DIVISORS,
        run_all=run,
        report=markdown,
    )


if __name__ == "__main__":
    main()
