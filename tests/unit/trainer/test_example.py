"""The example of a user's own script (trainer/examples/custom_train.py).

Covers: it runs as a process with only the contract's environment, exits 0 and writes a
valid summary with its evaluations; the same script runs a range test when asked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.trainer.helpers import EXAMPLES, read_summary, subprocess_env


def run_example(**variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_train.py")],
        env=subprocess_env(**variables),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_example_trains_and_writes_a_valid_summary(summary_path: Path) -> None:
    result = run_example(
        LRSWEEP_TERMINATION_PATH=str(summary_path),
        LRSWEEP_LEARNING_RATE="0.1",
        LRSWEEP_MAX_STEPS="60",
        LRSWEEP_TRIAL="t001",
    )
    assert result.returncode == 0, result.stderr
    summary = read_summary(summary_path)
    assert (summary["status"], summary["trial"], summary["step"]) == ("finished", "t001", 60)
    assert summary["learningRate"] == 0.1
    assert summary["history"]["step"] == [20, 40, 60]
    assert summary["history"]["val_loss"][-1] < summary["history"]["val_loss"][0]


def test_example_runs_a_range_test(summary_path: Path) -> None:
    result = run_example(
        LRSWEEP_TERMINATION_PATH=str(summary_path),
        LRSWEEP_MODE="range-test",
        LRSWEEP_MAX_STEPS="100",
    )
    assert result.returncode == 0, result.stderr
    block = read_summary(summary_path)["rangeTest"]
    assert block["learning_rate"][0] == 1e-5
    assert {"steepest", "valley", "divergence"} <= set(block)
