"""Report a training run to LRSweep from your own PyTorch script.

    from lrsweep_trainer import report

    with report.start(learning_rate=1e-3, max_steps=1000) as session:
        optimizer = torch.optim.SGD(model.parameters(), lr=session.learning_rate)
        for step in range(1, session.max_steps + 1):
            ...  # one training step
            if session.should_evaluate(step) and session.log(
                step, train_loss=train_loss, val_loss=val_loss
            ):
                break  # diverged, or LRSweep asked the trial to stop (SIGTERM)

`start()` reads the trial's settings from the environment (docs/contract.md): the keyword
arguments are what the script runs with when no sweep sets them. The session serves the
Prometheus endpoint, watches for divergence, turns SIGTERM into a polite stop, and on exit
writes the summary, also when the block raises (status `failed`).

Checkpoints: `state = session.resume(save=lambda: {"model": model.state_dict(), ...})` keeps
what `save` returns at every evaluation, or every LRSWEEP_CHECKPOINT_EVERY steps (when the
sweep gives the trial a checkpoint directory), and returns what an earlier attempt kept, or
None; train on from `session.start_step + 1`. A retried or relaunched trial then goes on
where it was.

Range tests: `session.lr_at(step)` gives the rate for each step (exponentially growing in
range-test mode); set it on the optimizer and report every step's loss with `log_step`.
The built-in trainer (`python -m lrsweep_trainer`) runs on this same session.

Several processes (torchrun, DDP): every rank calls `start()` and then `log`/`log_step` at
the same steps; rank 0 speaks for the trial and every rank gets the same answers
(`lrsweep_trainer.distributed`). Initialize torch.distributed before `start()` where the
script uses it; otherwise `start()` joins the ranks itself.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from lrsweep.engine.rangetest import (
    DEFAULT_BETA,
    LossSmoother,
    RangeTestResult,
    analyse,
    is_divergent,
)
from lrsweep_trainer.distributed import Alone, Group, Ranks, join
from lrsweep_trainer.metrics import MetricsExporter
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.summary import History, Status, SummaryInput, render_summary, write_summary

logger = logging.getLogger("lrsweep_trainer")

_Handler = Callable[[int, FrameType | None], object] | int | None


@dataclass(frozen=True)
class _KeptSession:
    """The session's own part of a checkpoint: where it was, and what it had reported."""

    step: int
    reference_loss: float | None
    points: list[tuple[int, dict[str, float]]]

    @classmethod
    def read(cls, kept: Mapping[str, Any]) -> _KeptSession:
        """Raises (KeyError, TypeError, ValueError) on anything else."""
        reference = kept["reference_loss"]
        return cls(
            step=int(kept["step"]),
            reference_loss=None if reference is None else float(reference),
            points=[
                (int(step), {str(name): float(value) for name, value in metrics.items()})
                for step, metrics in kept["points"]
            ],
        )


CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_VERSION = 1


def _partial(path: Path) -> Path:
    """Where a checkpoint is written before it replaces `path`."""
    return path.with_name(path.name + ".partial")


class Session:
    """One trial's reporting: metrics endpoint, divergence watch, SIGTERM, summary.

    In a trial of several processes (`group`), rank 0 serves the metrics, keeps the
    checkpoint and writes the summary, and every rank runs with rank 0's settings.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        schedule: Callable[[int], float] | None = None,
        handle_sigterm: bool = True,
        group: Group | None = None,
    ) -> None:
        self._group: Group = group or Alone()
        self._leader = self._group.ranks.leader
        shared = self._group.share(settings)
        if shared != settings:
            logger.warning(
                "rank %d was given other settings than rank 0 (%s); it runs with rank 0's",
                self._group.ranks.rank,
                settings,
            )
        self.settings = settings = shared
        self._schedule = schedule
        self._history = History(protected=settings.rungs)
        self._metrics = MetricsExporter(settings.sweep, settings.trial)
        self._step = 0
        self._reference_loss: float | None = None
        self._diverged_reason: str | None = None
        self._range_stop_reason: str | None = None
        self._sigterm = False  # this process received SIGTERM
        self._terminated = False  # some rank had, as of the last report (`_agree`)
        self._summary: str | None = None
        self._smoother = LossSmoother(DEFAULT_BETA)
        self._best_smoothed = math.inf
        self._range_curve: list[tuple[float, float]] = []
        # Checkpoints: what to keep (see `resume`), and the step this attempt started after.
        self._save: Callable[[], Mapping[str, Any]] | None = None
        self._start_step = 0
        self._kept_at = 0  # the step of the checkpoint kept last (LRSWEEP_CHECKPOINT_EVERY)
        # Held while a checkpoint is written; `_discarded`: the sweep wants none kept any more.
        self._keeping = threading.Lock()
        self._discarded = False
        self._previous_handler: _Handler = None
        # The rung gate: the highest rung step the sweep has let this trial pass.
        self._gate = threading.Condition()
        self._released = -1
        self._handles_sigterm = False
        if handle_sigterm and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._handles_sigterm = True
        if self._leader:
            self._serve()

    def _serve(self) -> None:
        settings = self.settings
        try:
            self._metrics.serve(
                settings.metrics_port,
                settings.metrics_host,
                on_continue=self._release,
                on_discard=self._discard_checkpoint,
            )
        except OSError as error:
            # The summary still carries the result; a missing endpoint only costs live progress
            # (and the rung pauses, which no go-ahead could end: see `_gated`).
            logger.warning(
                "no metrics endpoint on %s:%d: %s; the sweep sees this trial only when it "
                "ends, and it does not pause at rungs",
                settings.metrics_host,
                settings.metrics_port,
                error,
            )

    # -- what the trial should do --------------------------------------------------------

    @property
    def learning_rate(self) -> float:
        """The trial's (peak) learning rate."""
        return self.settings.learning_rate

    @property
    def max_steps(self) -> int:
        """The trial's step budget (the script's fallback when the environment sets none)."""
        if self.settings.max_steps is None:
            raise ValueError("no step budget: set LRSWEEP_MAX_STEPS or pass max_steps=")
        return self.settings.max_steps

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def ranks(self) -> Ranks:
        """This process's place in the trial (rank 0 of 1 without torchrun)."""
        return self._group.ranks

    @property
    def range_test(self) -> bool:
        return self.settings.mode == "range-test"

    @property
    def start_step(self) -> int:
        """The step an earlier attempt's checkpoint had reached (0: none); train from the next."""
        return self._start_step

    @property
    def metrics_port(self) -> int | None:
        """The port actually served (None without an endpoint)."""
        return self._metrics.port

    def lr_at(self, step: int) -> float:
        """The rate for the update that completes `step` (counting from 1).

        Range-test mode: grows exponentially from the range start (step 1) to the range end
        (the last step). Otherwise: the peak rate times the schedule given to `start()`.
        """
        if step < 1:
            raise ValueError(f"steps count from 1, got {step}")
        if self.range_test:
            start, end = self.settings.range_start, self.settings.range_end
            span = max(1, self.max_steps - 1)
            return float(start * (end / start) ** (min(step - 1, span) / span))
        factor = 1.0 if self._schedule is None else self._schedule(step)
        return self.learning_rate * factor

    def should_evaluate(self, step: int) -> bool:
        """True at every `eval_every`-th step and at the last step of the budget.

        Range tests report every step through `log_step` and need no evaluations.
        """
        if self.range_test:
            return False
        return step % self.settings.eval_every == 0 or step == self.settings.max_steps

    @property
    def diverged(self) -> bool:
        return self._diverged_reason is not None

    @property
    def should_stop(self) -> bool:
        """Diverged, the range test is over, or SIGTERM arrived.

        In a trial of several processes: on any rank, as of the last `log` or `log_step`,
        so every rank stops at the same step.
        """
        return self.diverged or self._range_stop_reason is not None or self._stopped_by_signal

    @property
    def _stopped_by_signal(self) -> bool:
        return self._terminated if self._group.ranks.world_size > 1 else self._sigterm

    @property
    def range_result(self) -> RangeTestResult | None:
        """The suggestions of a range test (None before any step, or outside range tests)."""
        if not self._range_curve:
            return None
        lrs = [lr for lr, _ in self._range_curve]
        losses = [loss for _, loss in self._range_curve]
        return analyse(lrs, losses, self.settings.divergence_factor)

    # -- checkpoints ---------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        """Where this trial's state is kept (None: the sweep asked for no checkpoints)."""
        directory = self.settings.checkpoint_dir
        return Path(directory) / CHECKPOINT_FILE if directory else None

    def resume(self, save: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """Keep the trial's state across attempts; return what an earlier attempt kept.

        `save` returns the state to keep: tensors, numbers, strings, and dicts and lists of
        them (state_dicts are). With a checkpoint directory (LRSWEEP_CHECKPOINT_DIR) the
        session calls it at every `log` below the step budget (with LRSWEEP_CHECKPOINT_EVERY=N,
        only N steps or more after the last one kept), after recording the step and before
        pausing at a rung, and keeps the latest. The returned state is the one kept
        at `start_step`, with the evaluations up to it restored into this session; train on
        from `start_step + 1`. None: start from the first step (no directory, nothing kept,
        a range test, or a checkpoint of another run, which is logged).
        """
        self._save = save
        path = self.checkpoint_path
        if path is None or self.range_test:
            return None
        kept, session = self._load(path)
        step = None if session is None else session.step
        if self._group.share(step) != step:
            raise RuntimeError(
                f"rank {self._group.ranks.rank} found another checkpoint than rank 0 in "
                f"{path.parent}: every process of a trial must see the same checkpoint "
                "directory"
            )
        if session is None:
            return None
        self._restore(session)
        logger.info("resumed from the checkpoint at step %d", self._start_step)
        # Kept at a rung, before the pause there: pause again, as the sweep may not have
        # let the trial past it yet.
        self._pause_at(session.step, dict(session.points).get(session.step, {}))
        state: Mapping[str, Any] = kept["state"]
        return state

    def _load(self, path: Path) -> tuple[Any, _KeptSession | None]:
        """The checkpoint at `path` and its session part; (None, None): none usable."""
        if not path.exists():
            return None, None
        import torch  # only scripts that keep state need it: the API itself does not

        try:
            kept = torch.load(path, map_location="cpu", weights_only=True)
            problem = self._incompatible(kept)
            if not problem:
                return kept, _KeptSession.read(kept["session"])
        except Exception as error:  # a torn or foreign file: start afresh, never crash
            problem = f"unreadable ({type(error).__name__}: {error})"
        logger.warning("checkpoint %s not used: %s; starting from step 1", path, problem)
        return None, None

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must match to continue this run."""
        s = self.settings
        return {"learning_rate": s.learning_rate, "seed": s.seed, "max_steps": s.max_steps}

    def _incompatible(self, kept: Any) -> str:
        if not isinstance(kept, dict) or kept.get("version") != CHECKPOINT_VERSION:
            return f"not a version {CHECKPOINT_VERSION} checkpoint"
        if kept.get("run") != self._identity():
            return f"kept by another run ({kept.get('run')}, this one is {self._identity()})"
        return ""

    def _restore(self, kept: _KeptSession) -> None:
        self._start_step = self._step = self._kept_at = kept.step
        self._reference_loss = kept.reference_loss
        for step, metrics in kept.points:
            self._record(step, metrics)
        self._metrics.set_step(self._step, self.lr_at(max(1, self._step)))
        self._metrics.set_resumed_from(self._start_step)

    def _keep(self, step: int) -> None:
        """Save the state `resume` was given, as of `step` (atomically: a crash mid-write
        leaves the previous checkpoint)."""
        path = self.checkpoint_path
        budget = self.settings.max_steps
        if (
            not self._leader
            or self._save is None
            or path is None
            or self._discarded
            or step < 1
            or self.range_test
            or self.diverged
            or (budget is not None and step >= budget)
            or step - self._kept_at < self.settings.checkpoint_every
        ):
            return
        kept = {
            "version": CHECKPOINT_VERSION,
            "run": self._identity(),
            "session": {
                "step": step,
                "reference_loss": self._reference_loss,
                "points": [(p.step, dict(p.metrics)) for p in self._history.points],
            },
            "state": self._save(),
        }
        partial = _partial(path)
        import torch

        with self._keeping:
            if self._discarded:  # the sweep said so while `save` ran
                return
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(kept, partial)
                partial.replace(path)
                self._kept_at = step
            except OSError as error:
                # A missed checkpoint costs steps on a relaunch, not the trial.
                logger.warning(
                    "could not save the checkpoint at step %d to %s: %s", step, path, error
                )

    def _discard_checkpoint(self) -> None:
        """Delete the checkpoint and keep no other: nothing will go on from it (the run is
        over, or the sweep decided the trial: POST /discard)."""
        path = self.checkpoint_path
        with self._keeping:
            self._discarded = True
            if path is not None:
                path.unlink(missing_ok=True)
                _partial(path).unlink(missing_ok=True)

    # -- reporting -----------------------------------------------------------------------

    def log_step(self, step: int, loss: float, *, grad_norm: float | None = None) -> bool:
        """Report one training step's loss; True when the run should stop.

        Needed in range-test mode (every step is a point of the curve). In training it
        sharpens divergence detection: the first step's loss becomes the reference.
        """
        self._step = step
        rate = self.lr_at(step)
        self._metrics.set_step(step, rate, grad_norm)
        if self.range_test:
            self._range_step(step, rate, loss)
        else:
            if self._reference_loss is None:
                self._reference_loss = loss
            self._check_divergence(step, "training loss", loss)
        self._agree()
        return self.should_stop

    def log(self, step: int, /, **metrics: float) -> bool:
        """Report an evaluation at `step` (train_loss, val_loss, anything else); True when
        the run should stop."""
        values = {name: float(value) for name, value in metrics.items()}
        self._step = max(self._step, step)
        self._metrics.set_step(self._step, self.lr_at(max(1, step)))
        self._record(step, values)
        if "train_loss" in values and self._reference_loss is None:
            self._reference_loss = values["train_loss"]
        if "train_loss" in values:
            self._check_divergence(step, "training loss", values["train_loss"])
        # Validation loss is held to finiteness only: rising validation loss is overfitting.
        if "val_loss" in values and not math.isfinite(values["val_loss"]):
            self._check_divergence(step, "validation loss", values["val_loss"])
        self._progress(step, values)
        self._agree()
        self._keep(step)
        self._pause_at(step, values)
        return self.should_stop

    def _agree(self) -> None:
        """Give every rank the same stop: a divergence, the end of a range test or a SIGTERM
        on any rank stops them all, for the reason the first rank that saw it gives."""
        diverged, range_over, terminated = self._group.any(
            (self.diverged, self._range_stop_reason is not None, self._sigterm)
        )
        self._terminated = self._terminated or terminated
        if not (diverged or range_over):
            return
        reasons = self._group.gather((self._diverged_reason, self._range_stop_reason))
        if self._diverged_reason is None:
            self._diverged_reason = _first_reason(reasons, 0)
        if self._range_stop_reason is None:
            self._range_stop_reason = _first_reason(reasons, 1)

    def _pause_at(self, step: int, values: Mapping[str, float]) -> None:
        """At a rung, wait for the sweep's go-ahead (docs/contract.md, "Rung gate"). Rank 0
        waits for it; the other ranks wait for rank 0, and all learn whether a SIGTERM
        came meanwhile."""
        if step not in self.settings.rungs:
            return
        if self._leader:
            self._pause_leader(step, values)
        self._agree()

    def _pause_leader(self, step: int, values: Mapping[str, float]) -> None:
        if not self._gated(step):
            return
        objective = self.settings.objective
        if objective and objective not in values:
            # No decision can come without it: a script reporting the step in several
            # calls pauses at the one with the objective; one that never reports it
            # trains on, and the sweep fails at its next evaluation instead of after the
            # whole gate timeout.
            logger.warning(
                "rung %d: the sweep compares %r, not in this report; pausing only once "
                "it is reported",
                step,
                objective,
            )
        else:
            self._wait_at_rung(step)

    def _gated(self, step: int) -> bool:
        budget = self.settings.max_steps
        return (
            self.settings.gate_timeout > 0
            and self._metrics.port is not None  # else no go-ahead can reach us
            and step in self.settings.rungs
            and (budget is None or step < budget)
            and not self.should_stop
        )

    def _release(self, step: int) -> None:
        with self._gate:
            self._released = max(self._released, step)
            self._gate.notify_all()

    def _wait_at_rung(self, step: int) -> None:
        """Pause until the sweep says go on past `step`, stops us, or the timeout passes.

        Short waits, so a SIGTERM (which only sets a flag) ends the pause promptly.
        """
        deadline = time.monotonic() + self.settings.gate_timeout
        with self._gate:
            while self._released < step and not self._sigterm:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "no decision at rung %d within %gs; going on",
                        step,
                        self.settings.gate_timeout,
                    )
                    return
                self._gate.wait(min(left, 0.1))

    def _record(self, step: int, values: Mapping[str, float]) -> None:
        self._history.record(step, values)
        self._metrics.record_evaluation(step, values)

    def _progress(self, step: int, values: Mapping[str, float]) -> None:
        if not self._leader:
            return
        budget = f"/{self.settings.max_steps}" if self.settings.max_steps else ""
        shown = " ".join(f"{name} {value:.4g}" for name, value in values.items())
        trial = f"{self.settings.trial} " if self.settings.trial else ""
        logger.info("%sstep %d%s lr %.3g %s", trial, step, budget, self.lr_at(max(1, step)), shown)

    def _check_divergence(self, step: int, what: str, loss: float) -> None:
        if self.diverged:
            return
        if not math.isfinite(loss):
            self._diverged_reason = f"{what} became {loss} at step {step}"
        elif self._reference_loss is not None and is_divergent(
            loss, self._reference_loss, self.settings.divergence_factor
        ):
            self._diverged_reason = (
                f"{what} {loss:.4g} at step {step} exceeds "
                f"{self.settings.divergence_factor:g} x the initial loss {self._reference_loss:.4g}"
            )

    def _range_step(self, step: int, rate: float, loss: float) -> None:
        smoothed = self._smoother.add(loss)
        self._record(step, {"train_loss": loss, "learning_rate": rate, "smoothed_loss": smoothed})
        self._range_curve.append((rate, smoothed))
        if self._range_stop_reason is None and (
            not math.isfinite(smoothed)
            or (
                step > 1
                and is_divergent(smoothed, self._best_smoothed, self.settings.divergence_factor)
            )
        ):
            self._range_stop_reason = (
                f"range test stopped at step {step} (lr {rate:.3g}): smoothed loss "
                f"{smoothed:.4g} exceeds {self.settings.divergence_factor:g} x the best "
                f"{self._best_smoothed:.4g}"
            )
        self._best_smoothed = min(self._best_smoothed, smoothed)
        if step % self.settings.eval_every == 0 or self._range_stop_reason is not None:
            self._progress(step, {"smoothed_loss": smoothed})

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the training loop stops at its next step and writes the summary.
        self._sigterm = True

    # -- the end -------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return "diverged" if self.diverged else "finished"

    def _reason(self) -> str:
        if self._diverged_reason is not None:
            return self._diverged_reason
        if self._range_stop_reason is not None:
            return self._range_stop_reason
        if self._stopped_by_signal:
            return f"stopped by SIGTERM at step {self._step}"
        budget = self.settings.max_steps
        if budget is not None and self._step < budget:
            return f"ended at step {self._step} of {budget}"
        return f"reached step {self._step}"

    def finish(self, status: Status | None = None, reason: str | None = None) -> str:
        """End the trial: write the summary, flag the metrics, stop serving. Idempotent.

        Returns the summary JSON.
        """
        if self._summary is not None:
            return self._summary
        final_status = status or self.status
        final_reason = reason or self._reason()
        rate = self.lr_at(max(1, self._step)) if self.range_test else self.learning_rate
        self._summary = render_summary(
            SummaryInput(
                trial=self.settings.trial,
                status=final_status,
                reason=final_reason,
                step=self._step,
                learning_rate=rate,
                points=self._history.points,
                rungs=self.settings.rungs,
                range_test=self.range_test,
                range_result=self.range_result,
                resumed_from=self._start_step,
            )
        )
        if self._leader:
            self._publish(final_status, final_reason)
        self._metrics.close()
        self._group.close()
        if self._handles_sigterm:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._handles_sigterm = False
        return self._summary

    def _publish(self, status: Status, reason: str) -> None:
        """Rank 0's part of the end: the summary, the checkpoint's fate, the final gauges."""
        assert self._summary is not None
        budget = self.settings.max_steps
        if (
            status == "diverged"
            or (status == "finished" and budget is not None and self._step >= budget)
            or (status == "failed" and self.settings.final_attempt)
        ):
            self._discard_checkpoint()  # nothing left to go on from, or no attempt will
        problem = write_summary(self._summary, self.settings.termination_path)
        if problem is not None:
            logger.warning("%s", problem)
        self._metrics.set_finished(diverged=status == "diverged")
        logger.info("%s: %s", status, reason)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.finish()
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("failed", f"interrupted at step {self._step}")
        else:
            self.finish("failed", f"{type(exc).__name__} at step {self._step}: {exc}")


def _first_reason(reasons: list[tuple[str | None, str | None]], which: int) -> str | None:
    """The first rank's reason of one kind, with the rank it came from."""
    for rank, pair in enumerate(reasons):
        if pair[which] is not None:
            return f"rank {rank}: {pair[which]}"
    return None


def start(
    *,
    learning_rate: float | None = None,
    max_steps: int | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    schedule: Callable[[int], float] | None = None,
    env: Mapping[str, str] | None = None,
    handle_sigterm: bool = True,
) -> Session:
    """Start reporting a trial configured by the LRSWEEP_* environment.

    The keyword arguments are the script's own values, used where the environment sets
    nothing. `schedule` maps a step (from 1) to a multiplier of the peak rate, for
    `Session.lr_at`. `env` replaces os.environ (for tests). Under torchrun, every rank calls
    it (see `lrsweep_trainer.distributed`).
    """
    environment = os.environ if env is None else env
    settings = RunSettings.from_env(
        environment,
        learning_rate=learning_rate,
        max_steps=max_steps,
        eval_every=eval_every,
        seed=seed,
    )
    group = join(environment, longest_pause=settings.gate_timeout)
    return Session(settings, schedule=schedule, handle_sigterm=handle_sigterm, group=group)
