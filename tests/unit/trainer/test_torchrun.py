"""Trials of two processes under torchrun (CPU, gloo), as a trial pod or `lrsweep run` runs them.

Covers: the built-in trainer on two processes reports the evaluations one process does;
rank 0 alone serves the metrics and writes the one summary; a SIGTERM to torchrun (the
kubelet's, to the container's first process) or to one rank alone ends every rank at the
same step with a summary; a NaN on one rank stops every rank as diverged; every rank waits
at a rung until the sweep's go-ahead reaches rank 0, and a SIGTERM during that pause ends
them all; a rank that dies fails the attempt (torchrun exits non-zero) instead of hanging.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lrsweep.runtime.local import free_port
from tests.harness.pytest_plugin import wait_for
from tests.unit.trainer.helpers import read_summary, subprocess_env

SCRIPT = Path(__file__).with_name("torchrun_script.py")
# torchrun ends its workers with SIGTERM, then SIGKILL after this long (its default).
TORCHRUN_GRACE = 30
STARTUP = 60  # seconds for torchrun to start two Python processes that import torch


def torchrun(*program: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", *program]  # fmt: skip


class Trial:
    """One trial run under torchrun: its summary, metrics port and the script's records."""

    def __init__(self, tmp_path: Path, **variables: str) -> None:
        self.out = tmp_path / "ranks"
        self.out.mkdir()
        self.summary = tmp_path / "summary.json"
        self.port = free_port()
        self.env = subprocess_env(
            RANKS_OUT=str(self.out),
            LRSWEEP_TERMINATION_PATH=str(self.summary),
            LRSWEEP_METRICS_PORT=str(self.port),
            LRSWEEP_METRICS_HOST="127.0.0.1",
            LRSWEEP_TRIAL="t001",
            **variables,
        )
        self.log = tmp_path / "torchrun.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                torchrun(str(SCRIPT)),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def wait(self, timeout: float = STARTUP + TORCHRUN_GRACE) -> int:
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"torchrun still running after {timeout}s:\n{self.output()}")
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def step(self, rank: int) -> int:
        path = self.out / f"step{rank}"
        return int(path.read_text() or 0) if path.exists() else 0

    def reached(self, step: int) -> None:
        wait_for(lambda: self.step(0) >= step, timeout=STARTUP, message=f"rank 0 at step {step}")

    def pid(self, rank: int) -> int:
        return int((self.out / f"pid{rank}").read_text())

    def ended(self, rank: int) -> dict[str, Any]:
        ended: dict[str, Any] = json.loads((self.out / f"rank{rank}.json").read_text())
        return ended

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def trial(tmp_path: Path) -> Iterator[Callable[..., Trial]]:
    """Makes the test's trial (environment variables as keywords); kills what is left."""
    made: list[Trial] = []

    def make(**variables: str) -> Trial:
        made.append(Trial(tmp_path, **variables))
        return made[-1]

    yield make
    for each in made:
        each.kill()


def test_the_builtin_trainer_on_two_processes_reports_what_one_process_does(
    tmp_path: Path,
) -> None:
    flags = ["--task", "digits-mlp", "--lr", "0.2", "--steps", "100", "--eval-every", "25"]
    histories = []
    for name, command in (
        ("one", [sys.executable, "-m", "lrsweep_trainer"]),
        ("two", torchrun("-m", "lrsweep_trainer")),
    ):
        summary = tmp_path / f"{name}.json"
        done = subprocess.run(
            [*command, *flags, "--termination-path", str(summary)],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=STARTUP + 120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        histories.append(read_summary(summary)["history"])
    one, two = histories
    assert one["step"] == two["step"] == [0, 25, 50, 75, 100]
    for metric in ("train_loss", "val_loss", "val_accuracy"):
        assert two[metric] == pytest.approx(one[metric], rel=1e-4), metric


def test_rank_zero_alone_serves_the_metrics_and_writes_the_summary(
    trial: Callable[..., Trial],
) -> None:
    run = trial()
    run.start()
    run.reached(3)
    with urllib.request.urlopen(f"http://127.0.0.1:{run.port}/metrics", timeout=5) as response:
        assert 'lrsweep_trial_step{sweep="",trial="t001"}' in response.read().decode()
    assert run.wait() == 0, run.output()
    assert run.ended(0)["port"] == run.port
    assert run.ended(1)["port"] is None
    summary = read_summary(run.summary)
    assert (summary["status"], summary["step"]) == ("finished", 40)


def test_a_sigterm_to_torchrun_ends_every_rank_at_the_same_step(
    trial: Callable[..., Trial],
) -> None:
    run = trial()
    process = run.start()
    run.reached(5)
    process.send_signal(signal.SIGTERM)  # to torchrun only, as the kubelet signals PID 1
    run.wait()
    assert run.ended(0)["last"] == run.ended(1)["last"] < 40
    assert "stopped by SIGTERM" in read_summary(run.summary)["reason"]


def test_a_sigterm_to_one_rank_ends_every_rank_at_the_same_step(
    trial: Callable[..., Trial],
) -> None:
    run = trial()
    run.start()
    run.reached(5)
    os.kill(run.pid(1), signal.SIGTERM)
    assert run.wait() == 0, run.output()
    assert run.ended(0)["last"] == run.ended(1)["last"] < 40
    assert read_summary(run.summary)["reason"].startswith("stopped by SIGTERM at step")


def test_a_nan_on_one_rank_stops_every_rank_as_diverged(trial: Callable[..., Trial]) -> None:
    run = trial(RANKS_NAN_AT="5")
    run.start()
    assert run.wait() == 0, run.output()
    assert run.ended(0)["last"] == run.ended(1)["last"] == 5
    summary = read_summary(run.summary)
    assert summary["status"] == "diverged"
    assert summary["reason"] == "rank 1: training loss became nan at step 5"


def test_every_rank_waits_at_a_rung_until_the_sweep_says_go_on(
    trial: Callable[..., Trial],
) -> None:
    run = trial(LRSWEEP_RUNGS="5", LRSWEEP_GATE_TIMEOUT="120", LRSWEEP_OBJECTIVE="val_loss")
    run.start()
    run.reached(5)
    wait_for(lambda: run.step(1) == 5, timeout=10, message="rank 1 at the rung")
    assert run.process is not None
    assert run.process.poll() is None
    time.sleep(1.0)  # ten steps' time
    assert run.step(0) == run.step(1) == 5  # both paused at the rung
    go_on = urllib.request.Request(f"http://127.0.0.1:{run.port}/continue?step=5", method="POST")
    urllib.request.urlopen(go_on, timeout=5).close()
    assert run.wait() == 0, run.output()
    assert run.ended(0)["last"] == run.ended(1)["last"] == 40


def test_a_sigterm_during_a_rung_pause_ends_every_rank(trial: Callable[..., Trial]) -> None:
    run = trial(LRSWEEP_RUNGS="5", LRSWEEP_GATE_TIMEOUT="120", LRSWEEP_OBJECTIVE="val_loss")
    process = run.start()
    run.reached(5)
    wait_for(lambda: run.step(1) == 5, timeout=10, message="rank 1 at the rung")
    process.send_signal(signal.SIGTERM)
    run.wait(TORCHRUN_GRACE)
    assert run.ended(0)["last"] == run.ended(1)["last"] == 5
    assert read_summary(run.summary)["reason"] == "stopped by SIGTERM at step 5"


def test_a_rank_that_dies_fails_the_attempt_instead_of_hanging(
    trial: Callable[..., Trial],
) -> None:
    run = trial(RANKS_DIE_AT="5")
    run.start()
    assert run.wait() != 0
    assert not (run.out / "rank0.json").exists() or run.ended(0)["last"] < 40
