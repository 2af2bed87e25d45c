"""Checkpoints: a trial started again goes on from its last evaluation (docs/contract.md).

Covers: a run stopped and started again ends exactly as one run straight through (built-in
tasks with SGD and Adam); the resumed attempt reports the evaluations before the checkpoint
and the step it went on from (summary and metrics); a run that reached its budget or
diverged leaves no checkpoint, nor one that failed with no attempt to follow; a checkpoint
of another run, or an unreadable one, is not used; without a directory, or in a range test,
nothing is kept; a directory that cannot be written costs the checkpoint, not the trial;
with LRSWEEP_CHECKPOINT_EVERY a checkpoint is kept only that many steps after the last (also
in the built-in trainer); the built-in trainer, stopped by SIGTERM while paused at a rung,
goes on from there when started again; a trial kept at a rung pauses there again; a trial
the sweep tells to discard (POST /discard) deletes its checkpoint and keeps no other.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client import generate_latest

from lrsweep.runtime.local import free_port
from lrsweep_trainer.optimizers import OptimizerConfig
from lrsweep_trainer.report import CHECKPOINT_FILE, Session
from lrsweep_trainer.schedules import Schedule
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.tasks import get_task
from lrsweep_trainer.train import TrainConfig, train
from tests.unit.trainer.helpers import (
    gated_session,
    read_summary,
    subprocess_env,
    trainer_command,
)

STEPS = 60


class StopsAt(Session):
    """A session whose trial is told to stop after its evaluation at `stop_at`, as a
    SIGTERM there would (or, with `breaks`, whose script raises there)."""

    def __init__(
        self, settings: RunSettings, stop_at: int, breaks: bool = False, **options: Any
    ) -> None:
        super().__init__(settings, **options)
        self.stop_at = stop_at
        self.breaks = breaks

    def log(self, step: int, /, **metrics: float) -> bool:
        stop = super().log(step, **metrics) or step == self.stop_at
        if stop and self.breaks:
            raise RuntimeError(f"the script broke at step {step}")
        return stop


def run(
    summary: Path,
    *,
    task: str = "digits-mlp",
    checkpoints: Path | None = None,
    stop_at: int | None = None,
    breaks: bool = False,
    **settings: Any,
) -> Session:
    chosen = get_task(task)
    run_settings = RunSettings(
        **{
            "learning_rate": chosen.defaults.learning_rate,
            "max_steps": STEPS,
            "eval_every": 10,
            "termination_path": str(summary),
            "checkpoint_dir": "" if checkpoints is None else str(checkpoints),
            **settings,
        }
    )
    schedule = Schedule(chosen.defaults.schedule, STEPS, warmup_steps=5)
    session = (
        Session(run_settings, schedule=schedule, handle_sigterm=False)
        if stop_at is None
        else StopsAt(run_settings, stop_at, breaks, schedule=schedule, handle_sigterm=False)
    )
    config = TrainConfig(
        chosen, chosen.defaults.batch_size, OptimizerConfig(chosen.defaults.optimizer)
    )
    with session:
        train(config, session)
    return session


@pytest.mark.parametrize("task", ["digits-mlp", "char-lm"])
def test_a_run_stopped_and_started_again_ends_exactly_as_one_run_straight_through(
    tmp_path: Path, task: str
) -> None:
    run(tmp_path / "straight.json", task=task)
    run(tmp_path / "first.json", task=task, checkpoints=tmp_path / "ckpt", stop_at=30)
    run(tmp_path / "again.json", task=task, checkpoints=tmp_path / "ckpt")
    straight, again = (
        read_summary(tmp_path / "straight.json"),
        read_summary(tmp_path / "again.json"),
    )
    assert read_summary(tmp_path / "first.json")["step"] == 30
    assert again["history"] == straight["history"]
    assert (again["status"], again["step"]) == ("finished", STEPS)


def test_the_resumed_attempt_reports_its_earlier_evaluations_and_where_it_went_on_from(
    tmp_path: Path,
) -> None:
    run(tmp_path / "first.json", checkpoints=tmp_path / "ckpt", stop_at=20)
    session = run(tmp_path / "again.json", checkpoints=tmp_path / "ckpt")
    summary = read_summary(tmp_path / "again.json")
    assert session.start_step == 20
    assert summary["resumedFrom"] == 20
    assert summary["history"]["step"] == [0, 10, 20, 30, 40, 50, 60]
    exposition = generate_latest(session._metrics.registry).decode()
    assert 'lrsweep_trial_resumed_from_step{sweep="",trial=""} 20.0' in exposition


def test_with_checkpoint_every_a_checkpoint_is_kept_that_many_steps_after_the_last(
    tmp_path: Path,
) -> None:
    # Evaluations every 10 steps: kept at 30 (30 steps after the start), not at 40 or 50.
    run(tmp_path / "first.json", checkpoints=tmp_path / "ckpt", stop_at=50, checkpoint_every=25)
    session = run(tmp_path / "again.json", checkpoints=tmp_path / "ckpt", checkpoint_every=25)
    assert session.start_step == 30
    assert read_summary(tmp_path / "again.json")["step"] == STEPS


def test_a_run_that_reached_its_budget_leaves_no_checkpoint(tmp_path: Path) -> None:
    run(tmp_path / "s.json", checkpoints=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / CHECKPOINT_FILE).exists()


def test_a_stopped_run_keeps_its_checkpoint(tmp_path: Path) -> None:
    run(tmp_path / "s.json", checkpoints=tmp_path / "ckpt", stop_at=40)
    assert (tmp_path / "ckpt" / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize(("final", "kept"), [(True, False), (False, True)])
def test_a_run_that_fails_deletes_its_checkpoint_only_if_no_attempt_follows(
    tmp_path: Path, final: bool, kept: bool
) -> None:
    checkpoints = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="the script broke"):
        run(tmp_path / "s.json", checkpoints=checkpoints, stop_at=30, breaks=True,
            final_attempt=final)  # fmt: skip
    assert read_summary(tmp_path / "s.json")["status"] == "failed"
    assert (checkpoints / CHECKPOINT_FILE).exists() is kept


def test_a_diverged_run_leaves_no_checkpoint(tmp_path: Path) -> None:
    session = run(tmp_path / "s.json", checkpoints=tmp_path / "ckpt", learning_rate=1e4)
    assert session.diverged
    assert not (tmp_path / "ckpt" / CHECKPOINT_FILE).exists()


def test_a_checkpoint_of_another_run_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run(tmp_path / "first.json", checkpoints=tmp_path / "ckpt", stop_at=20, learning_rate=0.05)
    with caplog.at_level(logging.WARNING, logger="lrsweep_trainer"):
        session = run(tmp_path / "other.json", checkpoints=tmp_path / "ckpt", learning_rate=0.1)
    assert session.start_step == 0
    assert "kept by another run" in caplog.text
    assert read_summary(tmp_path / "other.json")["history"]["step"][0] == 0


def test_an_unreadable_checkpoint_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / CHECKPOINT_FILE).write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING, logger="lrsweep_trainer"):
        session = run(tmp_path / "s.json", checkpoints=tmp_path / "ckpt")
    assert session.start_step == 0
    assert "not used: unreadable" in caplog.text
    assert read_summary(tmp_path / "s.json")["status"] == "finished"


def test_a_checkpoint_whose_session_part_is_malformed_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run(tmp_path / "first.json", checkpoints=tmp_path / "ckpt", stop_at=20)
    path = tmp_path / "ckpt" / CHECKPOINT_FILE
    kept = torch.load(path, weights_only=True)
    kept["session"]["points"] = "not a list of points"
    torch.save(kept, path)
    with caplog.at_level(logging.WARNING, logger="lrsweep_trainer"):
        session = run(tmp_path / "again.json", checkpoints=tmp_path / "ckpt")
    assert session.start_step == 0
    assert "not used: unreadable" in caplog.text
    assert read_summary(tmp_path / "again.json")["history"]["step"][0] == 0


def test_without_a_checkpoint_directory_nothing_is_kept(tmp_path: Path) -> None:
    session = run(tmp_path / "s.json", stop_at=20)
    assert session.checkpoint_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_a_range_test_keeps_no_checkpoint(tmp_path: Path) -> None:
    run(tmp_path / "s.json", checkpoints=tmp_path / "ckpt", mode="range-test", stop_at=5)
    assert not (tmp_path / "ckpt").exists()


def test_a_directory_that_cannot_be_written_costs_the_checkpoint_not_the_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="lrsweep_trainer"):
        run(tmp_path / "s.json", checkpoints=blocker / "ckpt", stop_at=20)
    assert "could not save the checkpoint at step 10" in caplog.text
    assert read_summary(tmp_path / "s.json")["step"] == 20


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout:g}s"
        time.sleep(0.05)


def _stop_once_kept_and_start_again(
    tmp_path: Path, common: list[str], rung: int, *again: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run the built-in trainer (flags `common`, more env `variables`) gated at `rung`, SIGTERM
    it once its checkpoint appears (it must exit 0: first.json), and run it again, with more
    flags `again`, to the end (again.json)."""
    paused = subprocess.Popen(
        trainer_command(*common, "--termination-path", str(tmp_path / "first.json")),
        env=subprocess_env(
            LRSWEEP_RUNGS=str(rung),
            LRSWEEP_GATE_TIMEOUT="120",
            LRSWEEP_METRICS_PORT=str(free_port()),
            **variables,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(tmp_path / "ckpt" / CHECKPOINT_FILE)
        paused.send_signal(signal.SIGTERM)
        assert paused.wait(timeout=60) == 0
    finally:
        paused.kill()
    return subprocess.run(
        trainer_command(*common, *again, "--termination-path", str(tmp_path / "again.json")),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_trainer_stopped_while_paused_at_a_rung_goes_on_from_it_when_started_again(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "ckpt" / CHECKPOINT_FILE
    common = ["--steps", "60", "--eval-every", "20", "--checkpoint-dir", str(checkpoint.parent)]
    again = _stop_once_kept_and_start_again(tmp_path, common, 20)  # kept at 20, paused there
    assert again.returncode == 0, again.stderr
    assert "resumed from the checkpoint at step 20" in again.stderr
    assert read_summary(tmp_path / "first.json")["step"] == 20
    summary = read_summary(tmp_path / "again.json")
    assert (summary["status"], summary["step"], summary["resumedFrom"]) == ("finished", 60, 20)
    assert not checkpoint.exists()


def test_the_trainer_keeps_checkpoints_only_as_often_as_checkpoint_every_says(
    tmp_path: Path,
) -> None:
    common = ["--steps", "60", "--eval-every", "10", "--checkpoint-dir", str(tmp_path / "ckpt")]
    # Kept at step 30 only (the env's 25 steps after the start), then paused at the rung at 40.
    again = _stop_once_kept_and_start_again(
        tmp_path, common, 40, "--checkpoint-every", "25", LRSWEEP_CHECKPOINT_EVERY="25"
    )
    assert again.returncode == 0, again.stderr
    assert "resumed from the checkpoint at step 30" in again.stderr


def test_a_trial_kept_at_a_rung_pauses_there_again_until_the_go_ahead(tmp_path: Path) -> None:
    weights = torch.arange(3.0)
    with gated_session(tmp_path / "first.json", "0.1", checkpoints=tmp_path / "ckpt") as first:
        assert first.resume(lambda: {"weights": weights}) is None
        first.log(10, val_loss=1.0)  # kept, then paused until the short timeout
    with gated_session(tmp_path / "again.json", checkpoints=tmp_path / "ckpt") as again:
        sent = threading.Event()

        def go_ahead() -> None:
            time.sleep(0.2)
            sent.set()
            request = urllib.request.Request(
                f"http://127.0.0.1:{again.metrics_port}/continue?step=10", method="POST"
            )
            urllib.request.urlopen(request, timeout=5).close()

        thread = threading.Thread(target=go_ahead)
        thread.start()
        kept = again.resume(lambda: {"weights": weights})
        assert sent.is_set(), "resume() returned before the go-ahead at step 10"
        thread.join()
        assert kept is not None
        assert torch.equal(kept["weights"], weights)
        assert again.start_step == 10


def test_a_trial_told_to_discard_deletes_its_checkpoint_and_keeps_no_other(
    tmp_path: Path,
) -> None:
    weights = torch.arange(3.0)
    with gated_session(tmp_path / "s.json", "0", checkpoints=tmp_path / "ckpt") as session:
        session.resume(lambda: {"weights": weights})
        session.log(10, val_loss=1.0)
        kept = tmp_path / "ckpt" / CHECKPOINT_FILE
        assert kept.exists()
        request = urllib.request.Request(
            f"http://127.0.0.1:{session.metrics_port}/discard", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204
        assert not kept.exists()
        session.log(20, val_loss=0.9)
        assert not kept.exists()
