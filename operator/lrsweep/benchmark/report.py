"""The benchmark's result: each strategy's pick scored against the dense ground truth, as a
terminal table, JSON and Markdown."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from lrsweep.api import Goal

JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"


def regret(score: float | None, best: float, goal: Goal) -> float | None:
    """How much worse `score` is than `best`, as a ratio: score / best - 1, or best / score - 1
    for a metric maximized (so an accuracy of 0.45 against 0.5 is +11%, as a loss of 0.55
    against 0.5 is +10%). None without a score, or where a ratio means nothing (a score or
    best at or below 0)."""
    if score is None or not math.isfinite(score) or score <= 0 or best <= 0:
        return None
    return best / score - 1 if goal is Goal.MAXIMIZE else score / best - 1


def best_of(scores: Mapping[float, float | None], goal: Goal) -> tuple[float, float] | None:
    """The rate with the best score, and the score (ties: the lower rate), or None."""
    known = sorted((rate, s) for rate, s in scores.items() if s is not None and math.isfinite(s))
    if not known:
        return None
    pick = max if goal is Goal.MAXIMIZE else min
    return pick(known, key=lambda item: item[1])


@dataclass(frozen=True)
class Truth:
    """The dense ground truth at one benchmark seed."""

    seed: int
    best_rate: float
    best_score: float
    scores: dict[float, float | None]  # by dense rate; None: no full run reached the budget


@dataclass(frozen=True)
class Row:
    """One strategy at one benchmark seed."""

    strategy: str
    seed: int
    rate: float | None
    score: float | None
    regret: float | None
    compute_r: float
    trials: int
    note: str


@dataclass(frozen=True)
class Summary:
    """One strategy over every benchmark seed."""

    strategy: str
    seeds: int
    mean_regret: float | None  # None where a pick has no regret (it diverged, or no pick)
    worst_regret: float | None
    median_compute_r: float


def summarize(rows: tuple[Row, ...]) -> tuple[Summary, ...]:
    """Each strategy's regret and compute over the seeds, in the rows' order."""
    by_strategy: dict[str, list[Row]] = {}
    for row in rows:
        by_strategy.setdefault(row.strategy, []).append(row)
    out = []
    for strategy, runs in by_strategy.items():
        regrets = [r.regret for r in runs]
        known = [g for g in regrets if g is not None]
        complete = len(known) == len(regrets)
        out.append(
            Summary(
                strategy=strategy,
                seeds=len(runs),
                mean_regret=statistics.fmean(known) if complete else None,
                worst_regret=max(known) if complete else None,
                median_compute_r=statistics.median(r.compute_r for r in runs),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Report:
    document: str
    name: str
    strategy: str  # the document's own
    metric: str
    goal: Goal
    steps: int
    search: tuple[float, float]
    ratio: float
    dense_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    cache: str
    runs_trained: int  # by this benchmark; the rest came from the cache
    runs_recorded: int
    truths: tuple[Truth, ...]
    rows: tuple[Row, ...]
    command: str = ""

    @property
    def summary(self) -> tuple[Summary, ...]:
        return summarize(self.rows)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = [asdict(s) for s in self.summary]
        data["goal"] = self.goal.value
        data["truths"] = [
            {**asdict(t), "scores": {repr(r): s for r, s in t.scores.items()}} for t in self.truths
        ]
        return data

    def write(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        as_json, as_markdown = out / JSON_FILE, out / MARKDOWN_FILE
        text = json.dumps(_strict(self.to_json()), indent=2, allow_nan=False)
        as_json.write_text(text + "\n")
        as_markdown.write_text(markdown(self))
        return as_json, as_markdown


def _strict(value: Any) -> Any:
    """JSON numbers only: an infinite or NaN score (an overflowed loss) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.4g}"


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.4g}"


def _regret(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _columns(report: Report) -> list[str]:
    seeds = ["seed"] if len(report.seeds) > 1 else []
    return ["strategy", *seeds, "rate", report.metric, "regret", "compute", "trials", "note"]


def _cells(report: Report, row: Row) -> list[str]:
    name = row.strategy + (" (yours)" if row.strategy == report.strategy else "")
    seeds = [str(row.seed)] if len(report.seeds) > 1 else []
    return [
        name,
        *seeds,
        _rate(row.rate),
        _score(row.score),
        _regret(row.regret),
        f"{row.compute_r:.2f} R",
        str(row.trials),
        row.note,
    ]


def _truth_line(report: Report, truth: Truth) -> str:
    seed = f" at seed {truth.seed}" if len(report.seeds) > 1 else ""
    return (
        f"dense best{seed}: rate {truth.best_rate:.4g}, {report.metric} {truth.best_score:.4g} "
        f"(best of {len(truth.scores)} full runs {report.ratio:.3g}x apart over "
        f"{report.search[0]:g}..{report.search[1]:g}, {report.goal.value}d)"
    )


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )


def table(report: Report) -> Table:
    """The rows as a terminal table (`truth_lines` say what they are scored against)."""
    result = _table(f"{report.name}: each strategy's pick, scored by its full run")
    for name in _columns(report):
        result.add_column(name, no_wrap=name != "note", overflow="fold")
    for row in report.rows:
        result.add_row(*_cells(report, row))
    return result


_SUMMARY_COLUMNS = ["strategy", "seeds", "mean regret", "worst regret", "median compute"]


def _summary_cells(report: Report, summary: Summary) -> list[str]:
    yours = " (yours)" if summary.strategy == report.strategy else ""
    return [
        summary.strategy + yours,
        str(summary.seeds),
        _regret(summary.mean_regret),
        _regret(summary.worst_regret),
        f"{summary.median_compute_r:.2f} R",
    ]


def summary_table(report: Report) -> Table:
    """Each strategy over every seed (worth printing with more than one seed)."""
    result = _table(f"{report.name}: each strategy over {len(report.seeds)} seeds")
    for name in _SUMMARY_COLUMNS:
        result.add_column(name, no_wrap=True)
    for summary in report.summary:
        result.add_row(*_summary_cells(report, summary))
    return result


def truth_lines(report: Report) -> list[str]:
    """The dense best at each seed, and where the runs are."""
    return [
        *(_truth_line(report, t) for t in report.truths),
        f"{report.runs_recorded} runs recorded in {report.cache} "
        f"({report.runs_trained} trained now, the rest from earlier benchmarks)",
    ]


def markdown(report: Report) -> str:
    columns = _columns(report)
    lines = [
        f"# How well each strategy does on {report.name}",
        "",
        *([f"`{report.command}`", ""] if report.command else []),
        f"{report.document}: every strategy's sweep of this document (search.strategy "
        f"changed, all else as written), replayed on recorded full runs of its trial. "
        f"Regret: the chosen rate's full-run {report.metric} against the dense best "
        f"({'best / score' if report.goal is Goal.MAXIMIZE else 'score / best'} - 1); "
        "compute: the steps its trials trained, in full runs (R).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *(
            "| " + " | ".join(c.replace("|", "/") for c in _cells(report, r)) + " |"
            for r in report.rows
        ),
        "",
        *(f"- {line}" for line in truth_lines(report)),
    ]
    if len(report.seeds) > 1:
        lines += [
            "",
            f"Over the {len(report.seeds)} seeds (a mean of '-': a pick without a regret):",
            "",
            "| " + " | ".join(_SUMMARY_COLUMNS) + " |",
            "|" + "---|" * len(_SUMMARY_COLUMNS),
            *("| " + " | ".join(_summary_cells(report, s)) + " |" for s in report.summary),
        ]
    return "\n".join(lines) + "\n"
