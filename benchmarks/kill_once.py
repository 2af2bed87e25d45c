"""Run the built-in trainer as a trial, killing each trial's first attempt at a given step.

The fault of `benchmarks.retries`: a node lost or a spot GPU preempted mid-run. Used as the
trial's command, with

    KILL_AT        the step at which a trial's first training attempt is SIGKILLed
    KILL_MARKERS   a directory recording which trials have had their first attempt (a file
                   per trial, holding the step its first attempt was killed at, if it was)
    KILL_NO_CHECKPOINTS=1  drop LRSWEEP_CHECKPOINT_DIR: the trainer keeps no checkpoint

It reads the attempt's progress from its metrics endpoint, as the sweep does, and exits 1
once it has killed it (a crash: the sweep retries the trial). Range tests run untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

POLL = 0.01  # seconds between reads of the attempt's step


def step_of(port: str) -> int:
    """The attempt's last completed step (0 while its endpoint is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lrsweep_trial_step":
                return int(sample.value)
    return 0


def main() -> int:
    env = dict(os.environ)
    if env.get("KILL_NO_CHECKPOINTS") == "1":
        env.pop("LRSWEEP_CHECKPOINT_DIR", None)
    marker = Path(env["KILL_MARKERS"]) / env["LRSWEEP_TRIAL"]
    first = env.get("LRSWEEP_MODE", "train") == "train" and not marker.exists()
    marker.touch()
    child = subprocess.Popen([sys.executable, "-m", "lrsweep_trainer", *sys.argv[1:]], env=env)

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)  # the sweep stopping the trial

    signal.signal(signal.SIGTERM, forward)
    if first:
        kill_at = int(env["KILL_AT"])
        while child.poll() is None:
            if (step := step_of(env["LRSWEEP_METRICS_PORT"])) >= kill_at:
                child.kill()
                child.wait()
                marker.write_text(str(step))
                print(f"kill_once: killed {env['LRSWEEP_TRIAL']} at step {step}", flush=True)
                return 1
            time.sleep(POLL)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
