"""The trial's side of the contract (docs/contract.md): what LRSweep tells a trial to do.

`RunSettings` is read from the LRSWEEP_* environment by the reporting API, and built from
command-line flags (whose defaults are the same variables) by the built-in trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from lrsweep.contract import (
    CHECKPOINT_DIR,
    CHECKPOINT_EVERY,
    DEFAULT_METRICS_HOST,
    DEFAULT_TERMINATION_PATH,
    DIVERGENCE_FACTOR,
    EVAL_EVERY,
    FINAL_ATTEMPT,
    GATE_TIMEOUT,
    LEARNING_RATE,
    MAX_STEPS,
    METRICS_HOST,
    METRICS_PORT,
    MODE,
    OBJECTIVE,
    RANGE_END,
    RANGE_START,
    RUNGS,
    SEED,
    SWEEP,
    TERMINATION_PATH,
    TRIAL,
)
from lrsweep.engine.rangetest import DEFAULT_DIVERGENCE_FACTOR

T = TypeVar("T")
U = TypeVar("U")

Mode = Literal["train", "range-test"]
MODES: tuple[Mode, ...] = ("train", "range-test")
DEFAULT_MODE: Mode = "train"
DEFAULT_RANGE_START = 1e-5
DEFAULT_RANGE_END = 10.0


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"must be a positive number, got {text!r}")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be a positive integer, got {text!r}")
    return value


def parse_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port number 0-65535, got {text!r}")
    return value


def parse_rungs(text: str) -> tuple[int, ...]:
    """'100, 300,900' -> (100, 300, 900); an empty text means no rungs."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(sorted({parse_positive_int(part) for part in parts}))


def parse_mode(text: str) -> Mode:
    for mode in MODES:
        if text == mode:
            return mode
    raise ValueError(f"must be one of {', '.join(MODES)}, got {text!r}")


def parse_seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def parse_divergence_factor(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 1.0):
        raise ValueError(f"must be a number above 1, got {text!r}")
    return value


@dataclass(frozen=True)
class RunSettings:
    """What one trial is asked to do, and where it reports."""

    learning_rate: float
    max_steps: int | None = None  # None: the script decides (train mode only)
    eval_every: int = 1
    seed: int = 0
    sweep: str = ""
    trial: str = ""
    metrics_port: int = 0
    metrics_host: str = DEFAULT_METRICS_HOST
    termination_path: str = DEFAULT_TERMINATION_PATH
    rungs: tuple[int, ...] = ()
    mode: Mode = "train"
    range_start: float = DEFAULT_RANGE_START
    range_end: float = DEFAULT_RANGE_END
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR
    # Seconds to pause at each rung for the sweep's go-ahead (0: never pause).
    gate_timeout: float = 0.0
    # The metric the sweep compares at rungs ("": unknown); no pause at a rung without it.
    objective: str = ""
    # Where the trial keeps its state across attempts ("": no checkpoints).
    checkpoint_dir: str = ""
    # Steps at least between two checkpoints (0: one at every evaluation).
    checkpoint_every: int = 0
    # No attempt follows if this one fails: a failed run deletes its checkpoint.
    final_attempt: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0.0):
            raise ValueError(f"the learning rate must be positive, got {self.learning_rate}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"the step budget must be at least 1, got {self.max_steps}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, got {self.eval_every}")
        if not self.divergence_factor > 1.0:
            raise ValueError(f"the divergence factor must exceed 1, got {self.divergence_factor}")
        if self.mode == "range-test":
            if self.max_steps is None:
                raise ValueError("a range test needs a number of steps (LRSWEEP_MAX_STEPS)")
            if not 0.0 < self.range_start < self.range_end:
                raise ValueError(
                    f"the range must grow: start {self.range_start} < end {self.range_end}"
                )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        learning_rate: float | None = None,
        max_steps: int | None = None,
        eval_every: int | None = None,
        seed: int = 0,
    ) -> RunSettings:
        """Read the environment; the keyword arguments are fallbacks for unset variables.

        The environment wins because it is what the sweep varies: a script's own values are
        what it runs with when no sweep is driving it.
        """

        def read(name: str, parse: Callable[[str], T], fallback: U) -> T | U:
            text = env.get(name, "").strip()
            if not text:
                return fallback
            try:
                return parse(text)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None

        mode = read(MODE, parse_mode, DEFAULT_MODE)
        range_start = read(RANGE_START, parse_positive_float, DEFAULT_RANGE_START)
        rate = read(LEARNING_RATE, parse_positive_float, learning_rate)
        if rate is None:
            if mode != "range-test":
                raise ValueError(
                    f"no learning rate: set {LEARNING_RATE} or pass learning_rate= as a fallback"
                )
            rate = range_start
        steps = read(MAX_STEPS, parse_positive_int, max_steps)
        return cls(
            learning_rate=rate,
            max_steps=steps,
            eval_every=read(EVAL_EVERY, parse_positive_int, eval_every or 1),
            seed=read(SEED, int, seed),
            sweep=env.get(SWEEP, ""),
            trial=env.get(TRIAL, ""),
            metrics_port=read(METRICS_PORT, parse_port, 0),
            metrics_host=read(METRICS_HOST, str, DEFAULT_METRICS_HOST),
            termination_path=read(TERMINATION_PATH, str, DEFAULT_TERMINATION_PATH),
            rungs=read(RUNGS, parse_rungs, ()),
            mode=mode,
            range_start=range_start,
            range_end=read(RANGE_END, parse_positive_float, DEFAULT_RANGE_END),
            divergence_factor=read(
                DIVERGENCE_FACTOR, parse_divergence_factor, DEFAULT_DIVERGENCE_FACTOR
            ),
            gate_timeout=read(GATE_TIMEOUT, parse_seconds, 0.0),
            objective=env.get(OBJECTIVE, "").strip(),
            checkpoint_dir=env.get(CHECKPOINT_DIR, "").strip(),
            checkpoint_every=read(CHECKPOINT_EVERY, parse_positive_int, 0),
            final_attempt=read(FINAL_ATTEMPT, parse_bool, False),
        )
