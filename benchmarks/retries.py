"""What checkpoints save when trials die mid-run: the quickstart with its trials killed once.

    .venv/bin/python -m benchmarks.retries

Runs the quickstart three times, side by side in one invocation, through the local runtime:
as it is; with every trial's first training attempt killed (SIGKILL) once it passes half its
budget (`benchmarks/kill_once.py`: a lost node, a preempted GPU), its retry going on from
the trial's checkpoint; and killed the same way with no checkpoints, its retry starting
again from the first step. Reports each sweep's winner and compute in full runs (R) and the
ratio of the two faulty sweeps' compute, and writes benchmarks/results/retries.{json,md}.
`--quick` runs a shorter budget (the test suite's smoke run) into out/retries-quick/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.quickstart_vs_grid import QUICKSTART, compute_r
from benchmarks.search_efficiency_report import titled
from lrsweep.api import LRSweep, load_sweep
from lrsweep.engine.sweep import Decision
from lrsweep.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUICK_OUT = ROOT / "out" / "retries-quick"
KILLER = Path(__file__).with_name("kill_once.py")
KILL_AT = 0.5  # of the budget
QUICK_BUDGET = {"steps": 120, "evalEvery": 10, "minSteps": 10}
VARIANTS = ("no faults", "killed once, checkpoints", "killed once, no checkpoints")


def faulty(doc: LRSweep, markers: Path, *, checkpoints: bool) -> LRSweep:
    """`doc` with its trainer run under kill_once.py."""
    data = doc.model_dump(mode="json", exclude_none=True)
    container = data["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, str(KILLER)]
    steps = data["spec"]["budget"]["steps"]
    container["env"] = [
        *container.get("env", []),
        {"name": "KILL_AT", "value": str(round(steps * KILL_AT))},
        {"name": "KILL_MARKERS", "value": str(markers)},
        {"name": "KILL_NO_CHECKPOINTS", "value": "0" if checkpoints else "1"},
    ]
    return LRSweep.model_validate(data)


def trained_again(directory: Path) -> int:
    """Steps the retries trained a second time: from each killed attempt's step (its marker)
    back to where the retry went on from (its summary's resumedFrom; 0: the first step)."""
    again = 0
    for marker in (directory / "markers").iterdir():
        if not (text := marker.read_text()):
            continue  # not killed: stopped before half its budget, or a range test
        retry = directory / "out" / "trials" / f"{marker.name}-a2.summary.json"
        resumed = json.loads(retry.read_text()).get("resumedFrom", 0) if retry.exists() else 0
        again += int(text) - resumed
    return again


def summary(decision: Decision, steps: int, directory: Path) -> dict[str, Any]:
    best = decision.best
    return {
        "learning_rate": None if best is None else best.learning_rate,
        "score": None if best is None else best.score,
        "compute_r": compute_r(decision, steps),
        "attempts": sum(r.attempts for r in decision.records),
        "resumed": sorted(r.id for r in decision.records if r.start_step > 0),
        "trained_again_r": trained_again(directory) / steps,
    }


def run(doc: LRSweep, work: Path) -> dict[str, Any]:
    steps = doc.spec.budget.steps
    results = {}
    for variant in VARIANTS:
        directory = work / variant.replace(" ", "-").replace(",", "")
        (directory / "markers").mkdir(parents=True)
        sweep = doc
        if variant != VARIANTS[0]:
            sweep = faulty(doc, directory / "markers", checkpoints=variant == VARIANTS[1])
        results[variant] = summary(run_local(sweep, directory / "out"), steps, directory)
        print(f"{variant}: {results[variant]}", flush=True)
    with_, without = (results[v]["trained_again_r"] for v in VARIANTS[1:])
    return {
        "steps": steps,
        "kill_at": round(steps * KILL_AT),
        "variants": results,
        "trained_again_ratio": with_ / without,
    }


def markdown(result: Mapping[str, Any]) -> str:
    lines = [
        *titled("Retries with and without checkpoints", result["command"]),
        "",
        f"The quickstart ({result['steps']} steps a trial); in the faulty runs every trial's "
        f"first training attempt is killed at step {result['kill_at']} and retried.",
        "",
        "| sweep | winner | score | compute counted | trained again | attempts | went on "
        "from a checkpoint |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, r in result["variants"].items():
        rate = "none" if r["learning_rate"] is None else f"{r['learning_rate']:.4g}"
        score = "" if r["score"] is None else f"{r['score']:.4g}"
        resumed = ", ".join(r["resumed"]) or "-"
        lines.append(
            f"| {variant} | {rate} | {score} | {r['compute_r']:.2f} R | "
            f"{r['trained_again_r']:.2f} R | {r['attempts']} | {resumed} |"
        )
    lines += [
        "",
        "Trained again: steps a retry trained a second time, from where the killed attempt "
        "was (read from its metrics as it was killed) back to where the retry went on from. "
        "Compute counted is the sweep's own count, which cannot see the steps an attempt "
        "trained after its last scrape before dying: with checkpoints it counts them up to "
        "the checkpoint the retry went on from, without them it misses them.",
        "",
        f"Steps trained again with checkpoints / without: **{result['trained_again_ratio']:.2f}**.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter budget (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="where the reports go")
    args = parser.parse_args(argv)
    out: Path = args.out or (QUICK_OUT if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    doc = load_sweep(QUICKSTART.read_text())
    if args.quick:
        data = doc.model_dump(mode="json", exclude_none=True)
        data["spec"]["budget"].update(QUICK_BUDGET)
        doc = LRSweep.model_validate(data)
    with tempfile.TemporaryDirectory(prefix="lrsweep-retries-") as tmp:
        result = run(doc, Path(tmp))
    command = " ".join([".venv/bin/python", "-m", "benchmarks.retries", *(argv or sys.argv[1:])])
    result = {"command": command, **result}
    (out / "retries.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (out / "retries.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
