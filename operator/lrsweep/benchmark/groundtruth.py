"""Full runs and range tests of the user's trial, as `lrsweep run` launches them.

Every run is a trial of an LRSweep derived from the user's document, driven by the local
runtime (`runtime.local.run_local`: the processes, the contract's environment, retries and
the checks that a broken template ends the sweep): full runs as a `grid` sweep over the
rates wanted, `--jobs` at once; a range test as a `rangeTest` sweep allowed one trial. A
run's seed reaches its process as the container's LRSWEEP_SEED, which wins over the
contract's. Each run's evaluations are the ones the runtime saw: every scrape of the
trainer's history while it ran, and its summary.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lrsweep import contract
from lrsweep.api import MAX_TRIALS_LIMIT, LRSweep, SpecError, Strategy, TrialPhase
from lrsweep.benchmark.cache import CurveCache, RangeTestKey
from lrsweep.engine import strategies
from lrsweep.engine.sweep import Decision
from lrsweep.engine.trials import TrialRecord
from lrsweep.runtime.following import Curve
from lrsweep.runtime.local import TRIALS_DIR, discard_checkpoints, run_local

RUNS_DIR = "runs"  # under the cache's directory: the last batch's logs and summaries
ENDED = frozenset({TrialPhase.SUCCEEDED, TrialPhase.DIVERGED, TrialPhase.FAILED})


def _seeded(doc: LRSweep, seed: int, search: dict[str, Any]) -> LRSweep:
    """The user's document searching as `search` says, its trials at seed `seed`."""
    data = doc.model_dump(mode="json", exclude={"status"})
    data["spec"]["search"] = {"min": doc.spec.search.min, "max": doc.spec.search.max, **search}
    data["spec"]["trial"]["template"] = template = copy.deepcopy(doc.spec.trial.template)
    container = template["spec"]["containers"][0]
    container["env"] = [*(container.get("env") or []), {"name": contract.SEED, "value": str(seed)}]
    return LRSweep.model_validate(data)


def range_test_key(doc: LRSweep, seed: int) -> RangeTestKey:
    """The range test every strategy's sweep of `doc` launches, at `seed`."""
    search = doc.spec.search
    return RangeTestKey(seed, strategies.range_test_steps(doc.spec), search.min, search.max)


def curve_of(record: TrialRecord) -> Curve:
    """An ended trial's run, as the sweep recorded it."""
    return Curve(
        rate=record.learning_rate,
        points=record.points,
        end=record.step,
        diverged=record.phase is TrialPhase.DIVERGED,
        range_curve=record.range_curve,
        failure=record.reason if record.phase is TrialPhase.FAILED else "",
    )


class GroundTruth:
    """Trains what the cache lacks, through the local runtime, into the cache."""

    def __init__(self, doc: LRSweep, cache: CurveCache, *, jobs: int) -> None:
        self.doc = doc
        self.cache = cache
        self.jobs = jobs
        self.workdir = cache.directory / RUNS_DIR
        self.trained = 0  # runs this process trained (each range test counts as one)

    @property
    def logs(self) -> Path:
        return self.workdir / TRIALS_DIR

    def range_test(self, seed: int) -> Curve:
        key = range_test_key(self.doc, seed)
        known = self.cache.range_test(key)
        if known is not None:
            return known
        search = {"strategy": Strategy.RANGE_TEST.value, "maxTrials": 1, "parallelism": 1}
        decision = self._sweep(_seeded(self.doc, seed, search))
        (record,) = [r for r in decision.records if r.mode == "range-test"]
        if record.phase not in ENDED or decision.broken:
            raise self._failed(decision, f"the range test at seed {seed}")
        curve = curve_of(record)
        self.cache.put_range_test(key, curve)
        self.trained += 1
        return curve

    def full_runs(
        self, seed: int, rates: Sequence[float], on_run: Callable[[], None] = lambda: None
    ) -> None:
        """Full runs at each of `rates` at `seed` that the cache lacks; `on_run` as each ends."""
        wanted = sorted({r for r in rates if self.cache.train(r, seed) is None})
        for start in range(0, len(wanted), MAX_TRIALS_LIMIT):
            batch = wanted[start : start + MAX_TRIALS_LIMIT]
            search = {
                "strategy": Strategy.GRID.value,
                "values": batch,
                "seeds": 1,
                "maxTrials": len(batch),
                "parallelism": self.jobs,
            }
            decision = self._sweep(_seeded(self.doc, seed, search), seed, on_run)
            if any(self.cache.train(r, seed) is None for r in batch):
                raise self._failed(decision, f"the full runs at seed {seed}")

    def _sweep(
        self, doc: LRSweep, seed: int | None = None, on_run: Callable[[], None] = lambda: None
    ) -> Decision:
        """Run `doc` to its end; with `seed`, each full run goes to the cache as it ends."""

        def keep(decision: Decision) -> None:
            if seed is None or decision.broken:
                return
            for r in decision.records:
                if r.phase in ENDED and self.cache.train(r.learning_rate, seed) is None:
                    self.cache.put_train(r.learning_rate, seed, curve_of(r))
                    self.trained += 1
                    on_run()

        # Trial ids repeat from one batch to the next: no run may go on from another's state.
        discard_checkpoints(self.workdir)
        return run_local(doc, self.workdir, on_decision=keep)

    def _failed(self, decision: Decision, what: str) -> SpecError:
        return SpecError(f"{what} stopped: {decision.message}; the trials' logs are in {self.logs}")
