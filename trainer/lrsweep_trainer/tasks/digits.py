"""Handwritten digits (8x8 pixels, 10 classes) from scikit-learn's bundled copy of the
UCI data set: 1797 images, no download."""

from __future__ import annotations

import torch
from torch import nn

from lrsweep_trainer.tasks.base import (
    Task,
    TaskData,
    TaskDefaults,
    cross_entropy,
    split_indices,
)

VAL_SHARE = 0.2
PIXEL_MAX = 16.0  # pixel values run 0..16


def load(seed: int) -> TaskData:
    # Imported here: scikit-learn takes a second to import, which other tasks need not pay.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    inputs = torch.as_tensor(images, dtype=torch.float32) / PIXEL_MAX
    targets = torch.as_tensor(labels, dtype=torch.long)
    train, val = split_indices(len(targets), VAL_SHARE, seed)
    return TaskData(inputs[train], targets[train], inputs[val], targets[val], num_outputs=10)


def build_mlp(data: TaskData) -> nn.Module:
    width = data.train_inputs.shape[1]
    return nn.Sequential(
        nn.Linear(width, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, data.num_outputs),
    )


def build_cnn(data: TaskData) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, data.num_outputs),
    )


MLP = Task(
    name="digits-mlp",
    description="MLP 64-64-64-10 on the 8x8 digits (1437 train / 360 val images)",
    load=load,
    build_model=build_mlp,
    loss=cross_entropy,
    classification=True,
    defaults=TaskDefaults(learning_rate=0.03),
)

CNN = Task(
    name="digits-cnn",
    description="two 3x3 conv layers + linear on the 8x8 digits",
    load=load,
    build_model=build_cnn,
    loss=cross_entropy,
    classification=True,
    defaults=TaskDefaults(learning_rate=0.05),
)
