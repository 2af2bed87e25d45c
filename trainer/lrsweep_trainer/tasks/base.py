"""What a built-in task is: data split by seed, a model factory, a loss and defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from lrsweep_trainer.optimizers import OptimizerName
from lrsweep_trainer.schedules import ScheduleName


@dataclass(frozen=True)
class TaskData:
    """Training and validation tensors (inputs, targets) and the model's output width."""

    train_inputs: Tensor
    train_targets: Tensor
    val_inputs: Tensor
    val_targets: Tensor
    num_outputs: int

    def to(self, device: torch.device) -> TaskData:
        return TaskData(
            self.train_inputs.to(device),
            self.train_targets.to(device),
            self.val_inputs.to(device),
            self.val_targets.to(device),
            self.num_outputs,
        )


@dataclass(frozen=True)
class TaskDefaults:
    """How the task trains when neither a flag nor the environment says otherwise."""

    learning_rate: float
    steps: int = 300
    batch_size: int = 32
    optimizer: OptimizerName = "sgd"
    schedule: ScheduleName = "constant"


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable[[int], TaskData]  # seed -> data; the split depends on the seed only
    build_model: Callable[[TaskData], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    classification: bool  # reports val_accuracy
    defaults: TaskDefaults


def split_indices(count: int, val_share: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random split of range(count) into (train, val) index tensors."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    val_count = max(1, round(count * val_share))
    return order[val_count:], order[:val_count]


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the last dimension of `output` (any number of leading dims)."""
    return functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def accuracy(output: Tensor, target: Tensor) -> float:
    return float((output.argmax(dim=-1) == target).float().mean())


def mean_squared_error(output: Tensor, target: Tensor) -> Tensor:
    return functional.mse_loss(output, target)
