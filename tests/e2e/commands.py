"""Running the `lrsweep` command line from end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lrsweep(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    stdin: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """`lrsweep ARGS...` as a user runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "lrsweep.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        input=stdin,
    )


def start_lrsweep(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    """`lrsweep ARGS...` in the background, interruptible with SIGINT."""
    return subprocess.Popen(
        [sys.executable, "-m", "lrsweep.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        # As from a terminal: a test run started in the background (`make test &`) passes
        # SIGINT down ignored, and Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def children_running(proc: subprocess.Popen[str], program: Path) -> list[int]:
    """The processes `proc` started that run `program` (its trials; other tests may be
    running the same program at the same time)."""
    found = subprocess.run(
        ["pgrep", "-P", str(proc.pid), "-f", str(program)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
