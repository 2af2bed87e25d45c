"""Synthetic regression: a random smooth teacher function of 8 inputs plus noise, all drawn
from the seed; targets are standardised so the initial loss is about 1."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lrsweep_trainer.tasks.base import Task, TaskData, TaskDefaults, mean_squared_error

INPUTS = 8
TEACHER_WIDTH = 16
TRAIN_SIZE = 1024
VAL_SIZE = 256
NOISE = 0.1


def load(seed: int) -> TaskData:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(TRAIN_SIZE + VAL_SIZE, INPUTS, generator=generator)
    # Teacher: a linear part plus a layer of tanh units, so a linear model is not enough.
    linear = torch.randn(INPUTS, 1, generator=generator) / INPUTS**0.5
    hidden = torch.randn(INPUTS, TEACHER_WIDTH, generator=generator) / INPUTS**0.5
    readout = torch.randn(TEACHER_WIDTH, 1, generator=generator) / TEACHER_WIDTH**0.5
    clean = inputs @ linear + torch.tanh(2.0 * inputs @ hidden) @ readout
    noisy = clean + NOISE * clean.std() * torch.randn(clean.shape, generator=generator)
    train_targets = noisy[:TRAIN_SIZE]
    targets = (noisy - train_targets.mean()) / train_targets.std()
    return TaskData(
        inputs[:TRAIN_SIZE],
        _column(targets[:TRAIN_SIZE]),
        inputs[TRAIN_SIZE:],
        _column(targets[TRAIN_SIZE:]),
        num_outputs=1,
    )


def _column(values: Tensor) -> Tensor:
    return values.reshape(-1, 1).contiguous()


def build_model(data: TaskData) -> nn.Module:
    return nn.Sequential(
        nn.Linear(data.train_inputs.shape[1], 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, data.num_outputs),
    )


REGRESSION = Task(
    name="regression",
    description="MLP 8-64-64-1 on synthetic data from a random tanh teacher (MSE)",
    load=load,
    build_model=build_model,
    loss=mean_squared_error,
    classification=False,
    defaults=TaskDefaults(learning_rate=0.02),
)
