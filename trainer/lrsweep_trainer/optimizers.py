"""Optimizers built from parameter groups.

Each group may carry an `lr_scale`: the group's rate is the trial's rate times that scale.
Today every model gives one group with scale 1; per-layer rates become a matter of
building more groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

OptimizerName = Literal["sgd", "adam", "adamw"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "adam", "adamw")
ParamGroup = dict[str, Any]

DEFAULT_MOMENTUM = 0.9
# torch's own default for AdamW; plain SGD and Adam default to no decay.
DEFAULT_ADAMW_WEIGHT_DECAY = 0.01


def parse_optimizer(text: str) -> OptimizerName:
    for name in OPTIMIZERS:
        if text == name:
            return name
    raise ValueError(f"unknown optimizer {text!r}; known optimizers: {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class OptimizerConfig:
    name: OptimizerName = "sgd"
    momentum: float = DEFAULT_MOMENTUM  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float | None = None  # None: DEFAULT_ADAMW_WEIGHT_DECAY for adamw, else 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay is not None and self.weight_decay < 0.0:
            raise ValueError(f"weight decay must not be negative, got {self.weight_decay}")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov needs the sgd optimizer with a momentum above 0")

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return DEFAULT_ADAMW_WEIGHT_DECAY if self.name == "adamw" else 0.0


def param_groups(model: nn.Module) -> list[ParamGroup]:
    """The model's trainable parameters as optimizer groups (one group, scale 1)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": params, "lr_scale": 1.0}]


def build_optimizer(
    groups: Iterable[ParamGroup], config: OptimizerConfig, learning_rate: float
) -> torch.optim.Optimizer:
    """An optimizer over `groups`, each at `learning_rate` x its `lr_scale`."""
    prepared: list[ParamGroup] = []
    for group in groups:
        scale = float(group.get("lr_scale", 1.0))
        prepared.append({**group, "lr_scale": scale, "lr": learning_rate * scale})
    decay = config.resolved_weight_decay
    if config.name == "sgd":
        return torch.optim.SGD(
            prepared,
            lr=learning_rate,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=decay,
        )
    if config.name == "adam":
        return torch.optim.Adam(prepared, lr=learning_rate, weight_decay=decay)
    return torch.optim.AdamW(prepared, lr=learning_rate, weight_decay=decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    """Set every group's rate to `learning_rate` x the group's `lr_scale`."""
    groups: Sequence[ParamGroup] = optimizer.param_groups
    for group in groups:
        group["lr"] = learning_rate * group.get("lr_scale", 1.0)
