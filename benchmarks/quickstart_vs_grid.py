"""The quickstart's winner against a 13-point log grid of full runs of the same task.

    .venv/bin/python -m benchmarks.quickstart_vs_grid

Both run through the local runtime, side by side in one invocation. Writes
benchmarks/results/quickstart-vs-grid.json with both scores, the winner's gap to the grid's
best, and the compute of each in full runs (R).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from lrsweep.api import LRSweep, Strategy, load_sweep
from lrsweep.engine import space
from lrsweep.engine.sweep import Decision
from lrsweep.runtime.local import run_local

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "manifests" / "examples" / "quickstart.yaml"
RESULT = ROOT / "benchmarks" / "results" / "quickstart-vs-grid.json"


def compute_r(decision: Decision, steps: int) -> float:
    return sum(r.steps_used for r in decision.records) / steps


def grid_of(doc: LRSweep, points: int) -> LRSweep:
    data = doc.model_dump(mode="json", exclude_none=True)
    search = data["spec"]["search"]
    rates = space.log_grid(search["min"], search["max"], points)
    search.update(strategy=Strategy.GRID.value, values=rates, maxTrials=points)
    data["metadata"]["name"] = f"{doc.metadata.name}-grid"
    return LRSweep.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=13)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    doc = load_sweep(QUICKSTART.read_text())
    steps = doc.spec.budget.steps
    with tempfile.TemporaryDirectory() as tmp:
        adaptive = run_local(doc, Path(tmp) / "adaptive")
        grid = run_local(grid_of(doc, args.points), Path(tmp) / "grid")
    if adaptive.best is None or grid.best is None:
        raise SystemExit(f"a sweep found no winner: {adaptive.message} / {grid.message}")
    gap = adaptive.best.score / grid.best.score - 1
    result = {
        "command": "python -m benchmarks.quickstart_vs_grid",
        "task": yaml.safe_dump(doc.spec.trial.template["spec"]["containers"][0]["args"]).strip(),
        "adaptive": {
            "learning_rate": adaptive.best.learning_rate,
            "val_loss": adaptive.best.score,
            "compute_r": round(compute_r(adaptive, steps), 2),
        },
        f"grid{args.points}": {
            "learning_rate": grid.best.learning_rate,
            "val_loss": grid.best.score,
            "compute_r": round(compute_r(grid, steps), 2),
            "scores": {f"{r.learning_rate:g}": r.rungs.get(steps) for r in grid.records},
        },
        "gap": round(gap, 4),
        "within_2_percent": gap <= 0.02,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
