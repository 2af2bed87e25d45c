"""Learning-rate schedules as pure functions: step -> multiplier of the peak rate.

Steps count from 1: `multiplier(s)` applies to the update that completes step s. An
optional linear warm-up climbs to the peak over the first `warmup_steps` updates
(s / warmup_steps); the decay then starts from the peak, counting updates since warm-up:

- constant:    1
- step:        gamma ** (j // decay_every)   (e.g. halve every N steps)
- exponential: gamma ** (j / decay_every)    (the smooth version of `step`)
- cosine:      (1 + cos(pi * j / (total_steps - warmup_steps))) / 2, down to 0

where j = s - 1 - warmup_steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleName = Literal["constant", "step", "exponential", "cosine"]
SCHEDULES: tuple[ScheduleName, ...] = ("constant", "step", "exponential", "cosine")

DEFAULT_GAMMA = 0.5
# Without an explicit decay interval, step and exponential decay apply gamma this many
# times over the steps after warm-up.
DEFAULT_DECAYS = 3


def parse_schedule(text: str) -> ScheduleName:
    for name in SCHEDULES:
        if text == name:
            return name
    raise ValueError(f"unknown schedule {text!r}; known schedules: {', '.join(SCHEDULES)}")


def warmup(step: int, warmup_steps: int) -> float:
    """Linear warm-up multiplier: step / warmup_steps during warm-up, 1 after it."""
    if step <= warmup_steps:
        return step / warmup_steps
    return 1.0


def step_decay(updates: int, decay_every: int, gamma: float) -> float:
    return float(gamma ** (updates // decay_every))


def exponential_decay(updates: int, decay_every: int, gamma: float) -> float:
    return float(gamma ** (updates / decay_every))


def cosine_decay(updates: int, horizon: int) -> float:
    progress = min(1.0, updates / horizon)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Schedule:
    """A schedule over `total_steps` steps; call it with a step to get the multiplier."""

    name: ScheduleName = "constant"
    total_steps: int = 1
    warmup_steps: int = 0
    decay_every: int | None = None  # None: (total_steps - warmup_steps) // DEFAULT_DECAYS
    gamma: float = DEFAULT_GAMMA

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {self.total_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must not be negative, got {self.warmup_steps}")
        if self.decay_every is not None and self.decay_every < 1:
            raise ValueError(f"decay_every must be at least 1, got {self.decay_every}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")

    @property
    def decay_interval(self) -> int:
        if self.decay_every is not None:
            return self.decay_every
        return max(1, (self.total_steps - self.warmup_steps) // DEFAULT_DECAYS)

    def __call__(self, step: int) -> float:
        if step < 1:
            raise ValueError(f"steps count from 1, got {step}")
        if step <= self.warmup_steps:
            return warmup(step, self.warmup_steps)
        updates = step - 1 - self.warmup_steps
        if self.name == "step":
            return step_decay(updates, self.decay_interval, self.gamma)
        if self.name == "exponential":
            return exponential_decay(updates, self.decay_interval, self.gamma)
        if self.name == "cosine":
            return cosine_decay(updates, max(1, self.total_steps - self.warmup_steps))
        return 1.0
