"""Backends whose trials follow known curves instead of training (see `run_sweep`'s Backend).

The replay follows recorded runs; the search suite follows curves it computes. Both advance
each running trial one evaluation per poll and keep the trainer's rung gate: a gated trial
waits at a rung until the sweep promotes it past.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lrsweep.engine.sweep import Launch, Promote
from lrsweep.engine.trials import Observation, ProcessState

# Polls in a row with trials running and none able to move before the backend gives up.
IDLE_POLLS = 3


class StuckError(RuntimeError):
    """Every trial waits at a rung and none can move: the sweep waits on itself."""


@dataclass
class FollowingBackend:
    """The gate and the bookkeeping; `advance` says what a trial reports next."""

    running: dict[str, tuple[Launch, int]] = field(default_factory=dict, kw_only=True)
    promoted: dict[str, int] = field(default_factory=dict, kw_only=True)
    idle_polls: int = field(default=0, kw_only=True)

    def advance(self, launch: Launch, step: int) -> Observation:
        """The next observation of a trial last seen at `step`: running at a later step,
        or exited."""
        raise NotImplementedError

    def launch(self, launch: Launch) -> None:
        self.running[launch.trial] = (launch, 0)

    def stop(self, trial: str) -> None:
        self.running.pop(trial, None)

    def promote(self, promotion: Promote) -> None:
        self.promoted[promotion.trial] = max(promotion.rung, self.promoted.get(promotion.trial, 0))

    def observe(self) -> list[Observation]:
        out: list[Observation] = []
        for trial, (launch, step) in sorted(self.running.items()):
            if step in launch.gates and self.promoted.get(trial, 0) < step:
                continue  # paused at a rung
            observation = self.advance(launch, step)
            if observation.state is ProcessState.RUNNING:
                self.running[trial] = (launch, observation.step or step)
            else:
                del self.running[trial]
            out.append(observation)
        self.idle_polls = 0 if out or not self.running else self.idle_polls + 1
        if self.idle_polls > IDLE_POLLS:
            raise StuckError(f"trials {sorted(self.running)} all wait at a rung")
        return out
