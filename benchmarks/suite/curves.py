"""Training curves of the suite's tasks, computed in this process and cached on disk.

A trial is deterministic for its (task, seed, rate) and never sees the sweep's decisions,
so a trial stopped at step k followed the first k steps of the full run at that rate. Every
strategy and peer therefore reads the same curves: each distinct rate is trained once per
seed (to the furthest step anything asked for) through the task's own script and the
reporting API's session, with portable numerics, and every strategy is charged for the
steps it would have trained.

Cache: one JSON file per (task, seed) under the cache directory, keyed by the digest of the
task suite's code and the versions it ran on; stale files are ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from benchmarks.suite.tasks import Task, start, train
from lrsweep.engine.space import tidy
from lrsweep.engine.sweep import Launch
from lrsweep.runtime.env import contract_env
from lrsweep.runtime.following import Curve
from lrsweep.runtime.metrics import parse_summary

SUITE = Path(__file__).resolve().parent
# Dense ground truth: rates sqrt(2) apart from 1e-5 to 2.6, as in the measurement that
# motivated the suite.
DENSE = tuple(tidy(1e-5 * 2 ** (k / 2)) for k in range(37))
SEARCH_MIN, SEARCH_MAX = 1e-5, 3.0


def suite_digest() -> str:
    """Changes with the tasks' code, the reporting API and the versions that compute."""
    import sklearn

    text = (SUITE / "tasks.py").read_bytes()
    text += (SUITE.parents[1] / "trainer" / "lrsweep_trainer" / "report.py").read_bytes()
    text += f"{torch.__version__} {sklearn.__version__}".encode()
    return hashlib.sha256(text).hexdigest()[:12]


def run(
    task: Task,
    seed: int,
    rate: float,
    until: int | None = None,
    *,
    range_steps: int | None = None,
    eval_every: int | None = None,
    span: tuple[float, float] = (SEARCH_MIN, SEARCH_MAX),
) -> Curve:
    """Train once in this process: a trial at `rate` up to `until`, or a range test over
    `span`, evaluated every `eval_every` steps (the task's own cadence when None)."""
    launch = Launch(
        trial="t000",
        attempt=1,
        learning_rate=rate,
        seed=seed,
        mode="train" if range_steps is None else "range-test",
        steps=range_steps or task.steps,
        eval_every=eval_every or task.eval_every,
        rungs=(),
        range_start=None if range_steps is None else span[0],
        range_end=None if range_steps is None else span[1],
    )
    # Metrics port 0: no endpoint, and so no pauses at rungs.
    env = contract_env(launch, sweep=task.name, metrics_port=0, termination_path="/dev/null")
    session = start(task, env)
    try:
        train(task, session, until=None if range_steps else until)
    except Exception as error:  # a task that raises is a bug of the suite: say which
        session.finish("failed", str(error))
        raise RuntimeError(f"{task.name} seed {seed} rate {rate:g}: {error}") from error
    reading = parse_summary(session.finish())
    return Curve(
        rate=rate,
        points=tuple(reading.points),
        end=reading.step or 0,
        diverged=reading.diverged,
        range_curve=tuple(reading.range_curve),
    )


class Store:
    """The curves of one (task, seed), read from and written to one cache file.

    `eval_every`: evaluate every so many steps instead of the task's own cadence (a sweep
    whose budget.evalEvery differs reads curves evaluated where it expects them).
    """

    def __init__(
        self, task: Task, seed: int, cache: Path | None, eval_every: int | None = None
    ) -> None:
        self.task = task
        self.seed = seed
        self.eval_every = eval_every if eval_every != task.eval_every else None
        cadence = f"-e{self.eval_every}" if self.eval_every else ""
        name = f"{task.name}-s{seed}{cadence}-{suite_digest()}.json"
        self.path = cache / name if cache else None
        self.curves: dict[str, Curve] = {}
        self.steps_trained = 0  # by this process, for the log
        if self.path is not None and self.path.exists():
            data = json.loads(self.path.read_text())
            self.curves = {k: Curve.from_json(v) for k, v in data.items()}

    def train(self, rate: float, until: int | None = None) -> Curve:
        """The curve at `rate` up to `until` (the full budget when None)."""
        steps = self.task.steps
        want = steps if until is None else min(until, steps)
        key = f"train:{rate!r}"
        known = self.curves.get(key)
        if known is not None and (known.done(steps) or known.end >= want):
            return known.upto(want)
        curve = run(self.task, self.seed, rate, want, eval_every=self.eval_every)
        self.steps_trained += curve.end
        self.curves[key] = curve
        return curve

    def range_test(self, steps: int, span: tuple[float, float] = (SEARCH_MIN, SEARCH_MAX)) -> Curve:
        """A range test of `steps` steps, its rate rising over `span`."""
        key = f"range:{steps}" if span == (SEARCH_MIN, SEARCH_MAX) else f"range:{steps}:{span}"
        if key not in self.curves:
            self.curves[key] = run(
                self.task,
                self.seed,
                span[0],
                range_steps=steps,
                eval_every=self.eval_every,
                span=span,
            )
            self.steps_trained += self.curves[key].end
        return self.curves[key]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v.to_json() for k, v in sorted(self.curves.items())}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(data))
        partial.replace(self.path)
