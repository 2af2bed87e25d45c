"""The built-in training loop, run in-process.

Covers: evaluations at every eval_every steps and at the last step; identical history for
the same seed and a different one for another seed; a huge rate stops early as diverged
with a reason naming the step; the schedule sets the optimizer's rate; a range test grows
the rate every step, stops on divergence and suggests rates inside the range; device
choice: cuda when unavailable is an error, auto falls back to the CPU; the gradient norm
reported is the one `clip_grad_norm_` measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lrsweep_trainer.optimizers import OptimizerConfig
from lrsweep_trainer.report import Session
from lrsweep_trainer.schedules import Schedule
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.tasks import get_task
from lrsweep_trainer.train import TrainConfig, _total_norm, resolve_device, train
from tests.unit.trainer.helpers import read_summary


def run(path: Path, task: str = "digits-mlp", **settings: Any) -> Session:
    chosen = get_task(task)
    options: dict[str, Any] = {
        "learning_rate": chosen.defaults.learning_rate,
        "max_steps": 30,
        "eval_every": 10,
        "termination_path": str(path),
        **settings,
    }
    schedule = options.pop("schedule", None)
    session = Session(RunSettings(**options), schedule=schedule, handle_sigterm=False)
    config = TrainConfig(
        chosen, chosen.defaults.batch_size, OptimizerConfig(chosen.defaults.optimizer)
    )
    with session:
        train(config, session)
    return session


def test_evaluates_before_training_every_eval_every_steps_and_at_the_last_step(
    summary_path: Path,
) -> None:
    run(summary_path, max_steps=25, eval_every=10)
    summary = read_summary(summary_path)
    assert summary["history"]["step"] == [0, 10, 20, 25]
    assert set(summary["history"]) == {"step", "train_loss", "val_loss", "val_accuracy"}
    assert (summary["status"], summary["reason"]) == ("finished", "reached step 25")


def test_same_seed_gives_an_identical_history(tmp_path: Path) -> None:
    run(tmp_path / "a.json", seed=3)
    run(tmp_path / "b.json", seed=3)
    first, second = read_summary(tmp_path / "a.json"), read_summary(tmp_path / "b.json")
    assert first["history"] == second["history"]


def test_another_seed_gives_another_history(tmp_path: Path) -> None:
    run(tmp_path / "a.json", seed=3)
    run(tmp_path / "b.json", seed=4)
    first, second = read_summary(tmp_path / "a.json"), read_summary(tmp_path / "b.json")
    assert first["history"]["val_loss"] != second["history"]["val_loss"]


def test_huge_rate_stops_early_as_diverged(summary_path: Path) -> None:
    session = run(summary_path, task="regression", learning_rate=50.0, max_steps=200)
    summary = read_summary(summary_path)
    assert session.diverged
    assert summary["status"] == "diverged"
    assert summary["step"] < 200
    assert f"at step {summary['step']}" in summary["reason"]
    # The step it stopped at is evaluated, with the loss as it is.
    assert summary["history"]["step"][-1] == summary["step"]


def test_schedule_sets_the_rate_of_each_step(summary_path: Path) -> None:
    schedule = Schedule("step", total_steps=30, decay_every=10, gamma=0.1)
    session = run(summary_path, learning_rate=0.5, schedule=schedule)
    assert [session.lr_at(s) for s in (1, 10, 11, 21)] == pytest.approx([0.5, 0.5, 0.05, 0.005])


def test_range_test_records_every_step_and_suggests_rates_in_the_range(
    summary_path: Path,
) -> None:
    session = run(
        summary_path,
        task="regression",
        mode="range-test",
        max_steps=150,
        range_start=1e-4,
        range_end=10.0,
    )
    summary = read_summary(summary_path)
    block = summary["rangeTest"]
    assert summary["status"] == "finished"
    assert summary["reason"].startswith("range test stopped at step")
    assert summary["history"]["step"] == list(range(1, summary["step"] + 1))
    assert block["learning_rate"][0] == pytest.approx(1e-4)
    assert block["learning_rate"] == sorted(block["learning_rate"])
    assert len(block["smoothed_loss"]) == summary["step"]
    result = session.range_result
    assert result is not None
    for rate in (result.steepest, result.valley, result.minimum):
        assert 1e-4 <= rate <= 10.0
    assert block["valley"] == pytest.approx(result.valley, rel=1e-5)
    assert result.divergence is not None
    assert result.valley < result.divergence


def test_cuda_when_unavailable_is_an_error_and_auto_falls_back_to_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_the_gradient_norm_is_the_one_clip_grad_norm_measures() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    frozen = torch.nn.Linear(2, 2)  # no gradient: left out, as clip_grad_norm_ leaves it out
    torch.autograd.backward(model(torch.randn(5, 3)).pow(2).sum())
    parameters = [*model.parameters(), *frozen.parameters()]
    expected = float(torch.nn.utils.clip_grad_norm_(parameters, float("inf")))
    assert _total_norm(parameters) == pytest.approx(expected, rel=1e-6)
    assert _total_norm(list(frozen.parameters())) == 0.0
