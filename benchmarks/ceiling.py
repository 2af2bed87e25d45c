"""The ceiling: how often k full runs around a known optimum meet the search-efficiency target.

An oracle is told, for each (task, seed), the dense rate that did best over the task's
other seeds (every seed with a dense ground truth but this one) and trains k rates 1.4x
apart around it at this seed, keeping the best: k full runs, k R, no search at all. This
estimates a ceiling for `adaptive` (about 4 R, searching included) rather than proving
one: a strategy that must find the optimum first knows it no better than 14 other seeds
do, and beats the oracle at the same compute only by spacing its full runs better or by
choosing well among more rates from partial runs, which near the optimum early scores
barely allow (the benchmark's short-horizon check).

The rates sit half a dense step off the dense grid (x0.43, x0.60, x0.84, x1.18, x1.66 and
x2.33 the centre on the benchmark's grid): a dense rate is the reference itself wherever it
is the seed's best, so landing on one flatters a choice (the noise floor of
`search-efficiency.md`). The same oracle read off the dense grid (no new runs) is reported
beside it to show how much. Where the k rates can sit two ways around the centre (odd k off
the grid, even k on it), a case's share is the mean of both. Scored as the benchmarks
score: regret against the seed's best dense rate, within target at max(1%, the seed sd over
the case's group of 5 seeds).

Beside it, successive halving around the same centre, as `adaptive` spends its compute:
n of those rates compared at its first comparison (minSteps x reductionFactor), the best
of them there trained on to the end, read from the same runs' values at that step.

    .venv/bin/python -m benchmarks.ceiling --jobs 2

Needs the dense ground truth of seeds 0-14 (search_efficiency and holdout write it; missing
ones are computed) and caches its own runs in OUT/ground-truth/ beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import holdout
from benchmarks.parallelism import (
    LABEL,
    in_parallel,
    results_dir,
    run_and_report,
    standard_options,
)
from benchmarks.search_efficiency import (
    FULL,
    REDUCTION_FACTOR,
    STRATEGY_PARALLELISM,
    BenchTask,
    GroundTruth,
    Settings,
    ground_truths,
    machine,
    machine_line,
    numerics,
    other_seed_runs,
    quick_settings,
    seed_spread,
    within_target,
)
from benchmarks.search_efficiency import STEM as BENCHMARK_STEM
from benchmarks.search_efficiency_report import pct, titled
from lrsweep.engine import space

STEM = "ceiling"
GROUPS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4),
    (5, 6, 7, 8, 9),
    (10, 11, 12, 13, 14),
)
# Where the oracle trains, in dense steps from the centre: off the grid, and on it.
OFF_GRID = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5)
ON_GRID = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
RUNS = (1, 2, 3, 4, 5, 6)  # k: full runs per case
# Successive halving around the same centre: (rates, kept) = `rates` trained to adaptive's
# first comparison (minSteps x reductionFactor), the best `kept` of them on to the end.
HALVING = ((5, 3), (6, 3), (6, 4))
TARGET = 0.9  # the search-efficiency target: the share of cases within target ...
BUDGET = 4  # ... at a median compute of at most this many full runs (R)


def windows(offsets: Sequence[float], k: int) -> list[tuple[float, ...]]:
    """The runs of k neighbouring offsets centred nearest the centre (one or two)."""
    runs = [tuple(offsets[i : i + k]) for i in range(len(offsets) - k + 1)]
    nearest = min(abs(statistics.fmean(r)) for r in runs)
    return [r for r in runs if math.isclose(abs(statistics.fmean(r)), nearest)]


def centre(others: Sequence[GroundTruth]) -> float:
    """The dense rate an oracle bets on: the lowest mean log ratio of its score to the seed's
    best over the other seeds. A rate that failed at any of them is out."""
    common = set.intersection(*(set(t.finals) for t in others))
    if not common:
        raise ValueError("no dense rate finished at every other seed")

    def cost(lr: float) -> float:
        return statistics.fmean(math.log1p(t.regret(t.finals[lr])) for t in others)

    return min(sorted(common), key=cost)


def dense_step(truth: GroundTruth) -> float:
    rates = sorted(p.lr for p in truth.points)
    return float((rates[-1] / rates[0]) ** (1 / (len(rates) - 1)))


def off_grid_rates(truth: GroundTruth, at: float) -> dict[float, float]:
    """Offset -> rate, the oracle's off-grid rates around `at`."""
    step = dense_step(truth)
    return {o: space.tidy(at * step**o) for o in OFF_GRID}


def on_grid_rates(truth: GroundTruth, at: float) -> dict[float, float | None]:
    """Offset -> dense rate (None past the grid's ends), the oracle read off the dense grid."""
    rates = sorted(p.lr for p in truth.points)
    i = rates.index(at)
    return {o: rates[i + int(o)] if 0 <= i + int(o) < len(rates) else None for o in ON_GRID}


@dataclass(frozen=True)
class Case:
    task: str
    seed: int
    group: int
    centre: float
    seed_sd: float
    # Offset -> the regret of the full run there (None: it diverged, or, on the grid, the
    # offset lies past the grid's ends).
    off_grid: dict[float, float | None]
    on_grid: dict[float, float | None]
    rates: dict[float, float]  # offset -> the off-grid rate trained there
    # Offset -> the objective there at adaptive's first comparison (None: it had diverged).
    compared: dict[float, float | None]
    comparison: float  # that comparison's step over the full budget

    def share(self, k: int, *, on_grid: bool) -> float:
        """How often k runs around the centre are within target: 0, 0.5 or 1."""
        regrets = self.on_grid if on_grid else self.off_grid
        hits = []
        for window in windows(ON_GRID if on_grid else OFF_GRID, k):
            finished = [r for o in window if (r := regrets[o]) is not None]
            hits.append(within_target(min(finished, default=None), self.seed_sd))
        return statistics.fmean(hits)

    def halving_share(self, rates: int, kept: int) -> float:
        """How often `rates` off-grid rates around the centre, compared at the first
        comparison, the best `kept` trained on, are within target (the mean over the
        windows of `rates` nearest the centre)."""
        hits = []
        for window in windows(OFF_GRID, rates):
            alive = [o for o in window if self.compared[o] is not None]
            best = sorted(alive, key=lambda o: (self.compared[o], abs(o)))[:kept]
            finished = [r for o in best if (r := self.off_grid[o]) is not None]
            hits.append(within_target(min(finished, default=None), self.seed_sd))
        return statistics.fmean(hits)

    def halving_compute(self, rates: int, kept: int) -> float:
        """In R: every rate to the comparison, the kept ones on to the end."""
        return rates * self.comparison + kept * (1 - self.comparison)


def regrets(
    truth: GroundTruth, scored: GroundTruth, rates: Mapping[float, float | None]
) -> dict[float, float | None]:
    """Offset -> regret at this seed of the run at each rate, from `scored`'s full runs."""
    finals = scored.finals
    return {
        o: None if lr is None or lr not in finals else truth.regret(finals[lr])
        for o, lr in rates.items()
    }


def ceiling_runs(
    task: BenchTask, truth: GroundTruth, rates: Mapping[float, float], *, out: Path, workdir: Path
) -> GroundTruth:
    """Full runs at the oracle's off-grid `rates`, this seed (cached in OUT/ground-truth,
    each rate trained once)."""
    return other_seed_runs(
        task,
        truth,
        sorted(rates.values()),
        jobs=1,
        cache_dir=out / "ground-truth",
        workdir=workdir / "ceiling",
        fresh=False,
        kind="ceiling",
    )


def measure(
    settings: Settings, groups: Sequence[Sequence[int]], *, jobs: int, out: Path, workdir: Path
) -> list[Case]:
    """Every (task, seed) of `groups`: the oracle's centre from the other seeds, its runs."""
    seeds = [s for g in groups for s in g]
    truths = ground_truths(
        replace(settings, seeds=tuple(seeds)),
        jobs=jobs,
        out=out,
        workdir=workdir / "truth",
        fresh=False,
        log=lambda line: print(line, flush=True),
    )
    units = [
        (task, gi, seed) for task in settings.tasks for gi, g in enumerate(groups) for seed in g
    ]

    def one(unit: tuple[BenchTask, int, int]) -> Case:
        task, gi, seed = unit
        truth = truths[task.name, seed]
        at = centre([truths[task.name, s] for s in seeds if s != seed])
        _, sd = seed_spread([truths[task.name, s] for s in groups[gi]])
        rates = off_grid_rates(truth, at)
        ran = ceiling_runs(task, truth, rates, out=out, workdir=workdir / f"{task.name}-s{seed}")
        step = task.min_steps * REDUCTION_FACTOR
        run_at = {p.lr: p for p in ran.points}
        return Case(
            task=task.name,
            seed=seed,
            group=gi,
            centre=at,
            seed_sd=sd,
            off_grid=regrets(truth, ran, rates),
            on_grid=regrets(truth, truth, on_grid_rates(truth, at)),
            rates=rates,
            compared={o: run_at[lr].rungs.get(step) for o, lr in rates.items()},
            comparison=step / task.steps,
        )

    return in_parallel(one, units, jobs)


def run(
    settings: Settings,
    groups: Sequence[Sequence[int]],
    *,
    jobs: int,
    out: Path,
    workdir: Path,
    command: str,
) -> dict[str, Any]:
    """The result `command` writes: the cases, their summary and `adaptive`'s own shares."""
    cases = measure(settings, groups, jobs=jobs, out=out, workdir=workdir)
    return {
        "command": command,
        "groups": [list(g) for g in groups],
        "summary": summarise(cases, groups),
        "adaptive": adaptive_measured(out, groups),
        "machine": machine(),
        "cases": [
            {
                **{k: v for k, v in vars(c).items() if not isinstance(v, dict)},
                **{
                    name: {str(o): r for o, r in getattr(c, name).items()}
                    for name in ("off_grid", "on_grid", "rates", "compared")
                },
            }
            for c in cases
        ],
    }


def group_label(seeds: Sequence[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def _shares(
    cases: Sequence[Case], groups: Sequence[Sequence[int]], shares: Sequence[float]
) -> dict[str, Any]:
    """The cases' `shares` (in the cases' order) per group of seeds and pooled."""
    per = {
        group_label(g): statistics.fmean(
            x for c, x in zip(cases, shares, strict=True) if c.group == gi
        )
        for gi, g in enumerate(groups)
    }
    return {"per_group": per, "pooled": statistics.fmean(shares), "hits": sum(shares)}


def summarise(cases: Sequence[Case], groups: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Per k: the share within target per group of seeds and pooled, off and on the grid;
    per successive-halving shape (HALVING), the same off the grid and its median compute."""
    summary: dict[str, Any] = {
        str(k): {
            "off_grid": _shares(cases, groups, [c.share(k, on_grid=False) for c in cases]),
            "on_grid": _shares(cases, groups, [c.share(k, on_grid=True) for c in cases]),
        }
        for k in RUNS
    }
    summary["halving"] = {
        f"{rates}-{kept}": {
            **_shares(cases, groups, [c.halving_share(rates, kept) for c in cases]),
            "median_compute_r": statistics.median(c.halving_compute(rates, kept) for c in cases),
        }
        for rates, kept in HALVING
    }
    return summary


def adaptive_measured(out: Path, groups: Sequence[Sequence[int]]) -> dict[str, list[int]]:
    """`adaptive`'s measured [hits, cases] per group, from the benchmarks' results at hand:
    search-efficiency.json for seeds 0-4, the holdout reports for the others."""
    measured: dict[str, list[int]] = {}
    for seeds in groups:
        if tuple(seeds) == FULL.seeds:
            path = out / f"{BENCHMARK_STEM}.json"
        else:
            path = out / f"{holdout.stem(seeds, named=tuple(seeds) != holdout.SEEDS)}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "per_parallelism" in data["summary"]:
            summary = data["summary"]["per_parallelism"][str(STRATEGY_PARALLELISM)]
        else:
            summary = data["summary"][LABEL]
        measured[group_label(seeds)] = [summary["within_target"], summary["cases"]]
    return measured


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    standard_options(
        parser, jobs="full runs at once", quick="the smoke settings: the quick task, seeds 0 and 1"
    )
    args = parser.parse_args(argv)
    out = results_dir(parser, args)
    settings = numerics(args, replace(quick_settings(), seeds=(0, 1)) if args.quick else FULL)
    groups: Sequence[Sequence[int]] = ((0, 1),) if args.quick else GROUPS
    run_and_report(
        STEM,
        out,
        lambda workdir, command: run(
            settings, groups, jobs=args.jobs, out=out, workdir=workdir, command=command
        ),
        markdown,
    )


def _share(value: float) -> str:
    return f"{value:.0%}"


def _table_head(before: Sequence[str], groups: Sequence[str], after: Sequence[str]) -> list[str]:
    """A markdown table's header: `before`, a column per group of seeds, `after`."""
    cells = [*before, *(f"seeds {g}" for g in groups), *after]
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def _halving_verdict(halving: Mapping[str, Any], full_runs: float) -> str:
    """Whether halving within BUDGET R beats BUDGET full runs around the same centre."""
    affordable = {s: r for s, r in halving.items() if r["median_compute_r"] <= BUDGET + 1e-9}
    if not affordable:
        return f"None of these fits in {BUDGET} R."
    shape, row = max(affordable.items(), key=lambda item: item[1]["pooled"])
    rates, kept = shape.split("-")
    worse = row["pooled"] < full_runs
    return (
        f"The best of them within {BUDGET} R ({rates} rates, {kept} kept: "
        f"{_share(row['pooled'])}) is {'below' if worse else 'at or above'} {BUDGET} full "
        f"runs ({_share(full_runs)}): around a known optimum, early scores choose "
        + ("worse than more full runs do." if worse else "as well as more full runs do.")
    )


def markdown(result: Mapping[str, Any]) -> str:
    """The oracle's share at each k beside `adaptive`'s measured one, then every case."""
    groups = [group_label(g) for g in result["groups"]]
    cases = result["cases"]
    measured = result["adaptive"]
    first = cases[0]
    factors = [f"x{first['rates'][str(o)] / first['centre']:.2f}" for o in OFF_GRID]
    spacing = first["rates"]["0.5"] / first["rates"]["-0.5"]
    lines = [
        *titled("The ceiling: k full runs around a known optimum", result["command"]),
        "",
        "For each case an oracle is told the dense rate that did best at the task's other "
        f"seeds ({sum(map(len, result['groups'])) - 1} of them: the lowest mean log ratio to "
        f"each seed's best score), trains k rates {spacing:.2f}x apart around it at the "
        "case's seed for the full budget, and keeps the best: k R, no search. This estimates "
        "the ceiling of a strategy that must find the optimum first, which knows it no "
        "better and can beat the oracle at the same compute only by spacing its full runs "
        "better or by choosing well among more rates from partial runs. The rates sit half "
        f"a dense step off the dense grid ({', '.join(factors)} the centre), since a dense "
        "rate is the reference itself where it is the seed's best; the last column reads the "
        "same oracle off the dense grid (the dense rates around the centre, no new runs). "
        "Where k rates can sit two ways around the centre, a case counts the mean of both. "
        "Target and tolerance as in `search-efficiency.md`: regret <= max(1%, seed sd), the "
        "seed sd over the case's group of seeds. The oracle's runs are from the machine that "
        "ran this command, the reference from the cached ground truth, wherever it was "
        "recorded: runs are not bitwise the same on every machine, which near the optimum "
        "is one more small perturbation, like a rate a little off." + machine_line(result),
        "",
        *_table_head(["full runs"], groups, [f"all {len(cases)} cases", "on the dense grid, all"]),
    ]
    for k in RUNS:
        row = result["summary"][str(k)]
        off, on = row["off_grid"], row["on_grid"]
        lines.append(
            f"| {k} ({k} R) | "
            + " | ".join(_share(off["per_group"][g]) for g in groups)
            + f" | **{_share(off['pooled'])}** | {_share(on['pooled'])} |"
        )
    if measured:
        hits = sum(h for h, _ in measured.values())
        total = sum(n for _, n in measured.values())
        cells = [f"{measured[g][0] / measured[g][1]:.0%}" if g in measured else "-" for g in groups]
        pooled = f"{hits / total:.0%}" + ("" if len(measured) == len(groups) else " (some)")
        lines.append(
            "| `adaptive`, measured (about 4 R, its search included) | "
            + " | ".join(cells)
            + f" | {pooled} | - |"
        )
    share_at = {k: result["summary"][str(k)]["off_grid"]["pooled"] for k in RUNS}
    halving = result["summary"]["halving"]
    enough = next((k for k in RUNS if share_at[k] >= TARGET), None)
    verdict = "within" if share_at[BUDGET] >= TARGET else "beyond"
    lines += [
        "",
        f"With {BUDGET} full runs around the optimum, and nothing spent finding it, the "
        f"oracle is within target in {share_at[BUDGET]:.0%} of the cases: the target's "
        f"{TARGET:.0%} at {BUDGET} R is {verdict} what {BUDGET} R of training buys on these "
        "tasks, before any search is paid for. "
        + (
            f"It takes {enough} full run{'s' if enough > 1 else ''} ({share_at[enough]:.0%})."
            if enough is not None
            else f"Not even {max(RUNS)} full runs reach it ({share_at[max(RUNS)]:.0%})."
        ),
        "",
        "Successive halving around the same centre instead, as `adaptive` spends its "
        f"compute: n of the off-grid rates to its first comparison ({first['comparison']:.0%} "
        "of the budget here), the best of them by the objective there on to the end.",
        "",
        *_table_head(["rates, kept", "compute"], groups, [f"all {len(cases)} cases"]),
        *(
            f"| {shape.replace('-', ', ')} | {row['median_compute_r']:.2f} R | "
            + " | ".join(_share(row["per_group"][g]) for g in groups)
            + f" | **{_share(row['pooled'])}** |"
            for shape, row in halving.items()
        ),
        "",
        _halving_verdict(halving, share_at[BUDGET]),
        "",
        "Regret of each full run (off the grid), by its rate over the centre:",
        "",
        "| task | seed | centre | seed sd | " + " | ".join(factors) + " |",
        "|---|---|---|---|" + "---|" * len(factors),
    ]
    for c in cases:
        cells = []
        for o in OFF_GRID:
            regret = c["off_grid"][str(o)]
            miss = "" if within_target(regret, c["seed_sd"]) else " (miss)"
            cells.append("diverged (miss)" if regret is None else f"{pct(regret)}{miss}")
        lines.append(
            f"| {c['task']} | {c['seed']} | {c['centre']:.4g} | {pct(c['seed_sd'])} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
