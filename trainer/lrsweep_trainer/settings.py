"""The trial's side of the contract (docs/contract.md): what LRSweep tells a trial to do.

One model, `RunSettings`, validates the contract's LRSWEEP_* variables wherever a value comes
from: `Settings.gather` takes each field from explicit values (the built-in trainer's flags),
else the environment (LRSWEEP_<FIELD>), else fallbacks (a script's own values), and a value
it refuses is named by its flag or variable. The reporting API reads it with
`RunSettings.from_env`; the built-in trainer's own options gather the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from lrsweep.contract import (
    DEFAULT_METRICS_HOST,
    DEFAULT_TERMINATION_PATH,
    LEARNING_RATE,
    MODE,
    RANGE_START,
)
from lrsweep.engine.rangetest import DEFAULT_DIVERGENCE_FACTOR

T = TypeVar("T")

PREFIX = "LRSWEEP_"

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


def text(parse: Callable[[str], Any]) -> BeforeValidator:
    """A field whose text (from the environment or a flag) goes through `parse`, which says
    what was expected when it refuses it; typed values pass as they are."""
    return BeforeValidator(lambda value: parse(value) if isinstance(value, str) else value)


class Settings(BaseModel):
    """Settings read from LRSWEEP_<FIELD> variables, flags and fallbacks (`gather`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of a field."""
        return PREFIX + field.upper()

    @classmethod
    def gather(
        cls,
        env: Mapping[str, str],
        *,
        fallbacks: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> Self:
        """Each field from `overrides`, else its variable in `env` (blank: unset), else
        `fallbacks`, else its default; None counts as not given. Raises ValueError naming
        the flag (`names`: field -> flag), variable or field of the value it refuses."""
        values: dict[str, Any] = {}
        source: dict[str, str] = {}
        for field, value in (fallbacks or {}).items():
            if value is not None:
                values[field], source[field] = value, field
        for field in cls.model_fields:
            found = env.get(cls.variable(field), "").strip()
            if found:
                values[field], source[field] = found, cls.variable(field)
        for field, value in (overrides or {}).items():
            if value is not None:
                values[field], source[field] = value, (names or {}).get(field, field)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            where = source.get(str(first["loc"][0])) if first["loc"] else None
            raise ValueError(f"{where}: {message}" if where else message) from None


PositiveFloat = Annotated[float, text(parse_positive_float)]
PositiveInt = Annotated[int, text(parse_positive_int)]
Seconds = Annotated[float, text(parse_seconds)]


class RunSettings(Settings):
    """What one trial is asked to do, and where it reports."""

    learning_rate: PositiveFloat
    max_steps: PositiveInt | None = None  # None: the script decides (train mode only)
    eval_every: PositiveInt = 1
    seed: Annotated[int, text(int)] = 0
    sweep: str = ""
    trial: str = ""
    metrics_port: Annotated[int, text(parse_port)] = 0
    metrics_host: str = DEFAULT_METRICS_HOST
    termination_path: str = DEFAULT_TERMINATION_PATH
    rungs: Annotated[tuple[int, ...], text(parse_rungs)] = ()
    mode: Annotated[Mode, text(parse_mode)] = "train"
    range_start: PositiveFloat = DEFAULT_RANGE_START
    range_end: PositiveFloat = DEFAULT_RANGE_END
    divergence_factor: Annotated[float, text(parse_divergence_factor)] = DEFAULT_DIVERGENCE_FACTOR
    # Seconds to pause at each rung for the sweep's go-ahead (0: never pause).
    gate_timeout: Seconds = 0.0
    # The metric the sweep compares at rungs ("": unknown); no pause at a rung without it.
    objective: str = ""
    # Where the trial keeps its state across attempts ("": no checkpoints).
    checkpoint_dir: str = ""
    # Steps at least between two checkpoints (0: one at every evaluation).
    checkpoint_every: Annotated[int, text(parse_positive_int)] = 0
    # No attempt follows if this one fails: a failed run deletes its checkpoint.
    final_attempt: Annotated[bool, text(parse_bool)] = False

    @model_validator(mode="after")
    def _followable(self) -> Self:
        """Refuse what no run could follow, in words."""
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
        return self

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
        what it runs with when no sweep is driving it. A range test without a rate starts
        at its range's start.
        """
        if learning_rate is None and not env.get(LEARNING_RATE, "").strip():
            if (env.get(MODE, "").strip() or DEFAULT_MODE) != "range-test":
                raise ValueError(
                    f"no learning rate: set {LEARNING_RATE} or pass learning_rate= as a fallback"
                )
            learning_rate = float(env.get(RANGE_START, "").strip() or DEFAULT_RANGE_START)
        fallbacks = {"learning_rate": learning_rate, "max_steps": max_steps, "seed": seed}
        return cls.gather(env, fallbacks={**fallbacks, "eval_every": eval_every})
