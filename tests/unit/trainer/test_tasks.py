"""Built-in tasks.

Covers: the registry and its error for unknown names; every task's data split depends on
the seed only; every task learns (validation loss drops in a short run at its default
rate); the char-lm text ships with the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lrsweep_trainer.optimizers import OptimizerConfig
from lrsweep_trainer.report import Session
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.tasks import TASKS, UnknownTaskError, get_task
from lrsweep_trainer.tasks.charlm import corpus
from lrsweep_trainer.train import TrainConfig, train
from tests.unit.trainer.helpers import read_summary

TASK_NAMES = sorted(TASKS)


def test_registry_holds_the_four_built_in_tasks() -> None:
    assert set(TASKS) == {"digits-mlp", "digits-cnn", "regression", "char-lm"}


def test_unknown_task_error_lists_the_known_tasks() -> None:
    with pytest.raises(UnknownTaskError, match="known tasks: digits-mlp, digits-cnn"):
        get_task("imagenet")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_data_split_depends_on_the_seed_only(name: str) -> None:
    task = get_task(name)
    first, again, other = task.load(0), task.load(0), task.load(1)
    assert torch.equal(first.val_inputs, again.val_inputs)
    assert torch.equal(first.train_targets, again.train_targets)
    assert not torch.equal(first.val_inputs, other.val_inputs)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_learns_at_its_default_rate(name: str, summary_path: Path) -> None:
    task = get_task(name)
    settings = RunSettings(
        learning_rate=task.defaults.learning_rate,
        max_steps=60,
        eval_every=10,
        termination_path=str(summary_path),
    )
    config = TrainConfig(task, task.defaults.batch_size, OptimizerConfig(task.defaults.optimizer))
    with Session(settings, handle_sigterm=False) as session:
        train(config, session)
    torch.manual_seed(0)
    data = task.load(0)
    with torch.no_grad():
        untrained = float(task.loss(task.build_model(data)(data.val_inputs), data.val_targets))
    assert read_summary(summary_path)["history"]["val_loss"][-1] < 0.7 * untrained


def test_char_lm_trains_on_tens_of_kilobytes_of_shipped_text() -> None:
    text = corpus()
    assert len(text) > 20_000
    assert json.dumps(text).isascii()
