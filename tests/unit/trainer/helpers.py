"""Helpers of the trainer tests: gated sessions, summaries, subprocess runs of the trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lrsweep.engine.rangetest
import lrsweep_trainer.cli
from lrsweep.runtime.local import free_port
from lrsweep_trainer import report

# Source folders of both packages, so subprocesses import them whether or not installed.
SOURCE_PATHS = [
    str(Path(lrsweep_trainer.cli.__file__).resolve().parents[1]),
    str(Path(lrsweep.engine.rangetest.__file__).resolve().parents[2]),
]
EXAMPLES = Path(lrsweep_trainer.cli.__file__).resolve().parents[1] / "examples"


def gated_session(
    summary_path: Path,
    timeout: str = "30",
    objective: str | None = None,
    checkpoints: Path | None = None,
    port: int | None = None,
) -> report.Session:
    """A 30-step session that pauses at rungs 10 and 20 for up to `timeout` seconds, serving
    its endpoint on 127.0.0.1 (at `port`, else a free one; 0: none), and keeping checkpoints
    in `checkpoints`."""
    told = {} if objective is None else {"LRSWEEP_OBJECTIVE": objective}
    kept = {} if checkpoints is None else {"LRSWEEP_CHECKPOINT_DIR": str(checkpoints)}
    return report.start(
        env={
            **told,
            **kept,
            "LRSWEEP_LEARNING_RATE": "0.1",
            "LRSWEEP_MAX_STEPS": "30",
            "LRSWEEP_RUNGS": "10,20,30",
            "LRSWEEP_GATE_TIMEOUT": timeout,
            "LRSWEEP_METRICS_PORT": str(free_port() if port is None else port),
            "LRSWEEP_METRICS_HOST": "127.0.0.1",
            "LRSWEEP_TERMINATION_PATH": str(summary_path),
        }
    )


def read_summary(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 4096
    document: dict[str, Any] = json.loads(text)
    return document


def subprocess_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSWEEP_")}
    env["PYTHONPATH"] = os.pathsep.join([*SOURCE_PATHS, env.get("PYTHONPATH", "")])
    env.update(variables)
    return env


def trainer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lrsweep_trainer", *args]


def run_trainer(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        trainer_command(*args),
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
