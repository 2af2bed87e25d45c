"""The benchmark's curves on disk: one directory per trial program and budget.

A run's curve depends on what the trial runs (the pod template, and the content of the
files its command names, such as the training script), the budget it is told (steps and
evalEvery), its rate and its seed; a range test's also on its length and its range. The
directory is named by a digest of the first two, so editing the script or the budget starts
a new ground truth, while changing the strategy, the range or the seeds reuses every curve
already trained. What the digest cannot see (a module run with `python -m`, the data the
script reads, the installed packages) is the user's to reset: delete the directory.

Curves are written as each run ends, so an interrupted benchmark goes on from there. Runs
that failed are kept in memory only: a failure is often the environment's (a missing data
directory), and the next benchmark tries those rates again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lrsweep.api import LRSweep, SpecError
from lrsweep.engine.space import log_grid
from lrsweep.runtime.following import Curve
from lrsweep.runtime.local import lock_directory

ROOT = Path(".lrsweep-benchmark")  # in the current directory
CURVES_FILE = "curves.json"
KEY_FILE = "key.json"  # what the digest covers, for a person looking at the directory
# Files the command names are hashed up to this size; a larger one (a data file) is not.
LARGEST_HASHED = 64 * 2**20


def dense_rates(low: float, high: float, ratio: float) -> list[float]:
    """Rates from `low` to `high`, both included, log-spaced at most `ratio` apart."""
    if ratio <= 1:
        raise ValueError(f"a ratio between rates must be above 1, got {ratio:g}")
    count = max(2, math.ceil(math.log(high / low) / math.log(ratio) - 1e-9) + 1)
    return log_grid(low, high, count)


def _named_files(doc: LRSweep, cwd: Path) -> dict[str, str]:
    """sha256 of each file the trial's command and args name, by the name as written."""
    container = doc.spec.trial.template["spec"]["containers"][0]
    base = Path(container.get("workingDir") or cwd)
    digests: dict[str, str] = {}
    for part in [*(container.get("command") or []), *(container.get("args") or [])]:
        text = str(part)
        if "$(" in text or not text:
            continue
        path = base / text
        try:
            if path.is_file() and path.stat().st_size <= LARGEST_HASHED:
                digests[text] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue  # not a readable file: an argument like any other
    return digests


def cache_key(doc: LRSweep, cwd: Path) -> dict[str, Any]:
    """What a full run's curve depends on, as far as it can be told from here."""
    budget = doc.spec.budget
    return {
        "template": doc.spec.trial.template,
        "steps": budget.steps,
        "evalEvery": budget.evalEvery,
        "files": _named_files(doc, cwd),
    }


def digest(key: dict[str, Any]) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RangeTestKey:
    seed: int
    steps: int
    start: float
    end: float

    def __str__(self) -> str:
        return f"range:{self.seed}:{self.steps}:{self.start!r}:{self.end!r}"


def _train_key(rate: float, seed: int) -> str:
    return f"train:{seed}:{rate!r}"


class CurveCache:
    """The curves of one trial program and budget, in `directory` (held locked while open:
    two benchmarks of the same program would each rewrite the other's curves)."""

    def __init__(self, directory: Path, key: dict[str, Any]) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SpecError(
                f"cannot create {directory} for the benchmark's curves ({err.strerror}); run "
                "it from a directory this user can write to"
            ) from None
        self._lock: IO[str] | None = lock_directory(
            directory,
            f"another `lrsweep benchmark` of this trial program is running in {directory}; "
            "wait for it to end (it trains the same runs)",
        )
        (directory / KEY_FILE).write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
        self.curves: dict[str, Curve] = {}
        path = directory / CURVES_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text())
                self.curves = {k: Curve.from_json(v) for k, v in data.items()}
            except (OSError, ValueError, KeyError, TypeError):
                self.curves = {}  # unreadable: trained again, and rewritten

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> CurveCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def train(self, rate: float, seed: int) -> Curve | None:
        """The full run at `rate` and `seed`, or None when not trained yet."""
        return self.curves.get(_train_key(rate, seed))

    def range_test(self, key: RangeTestKey) -> Curve | None:
        return self.curves.get(str(key))

    def put_train(self, rate: float, seed: int, curve: Curve) -> None:
        self._put(_train_key(rate, seed), curve)

    def put_range_test(self, key: RangeTestKey, curve: Curve) -> None:
        self._put(str(key), curve)

    def __len__(self) -> int:
        return len(self.curves)

    def _put(self, key: str, curve: Curve) -> None:
        self.curves[key] = curve
        if not curve.failure:
            self._save()

    def _save(self) -> None:
        """Replace the file in one step: a Ctrl-C never leaves half of it."""
        data = {k: v.to_json() for k, v in sorted(self.curves.items()) if not v.failure}
        path = self.directory / CURVES_FILE
        partial = path.with_name(f".{CURVES_FILE}.partial")
        partial.write_text(json.dumps(data, allow_nan=False))
        partial.replace(path)
