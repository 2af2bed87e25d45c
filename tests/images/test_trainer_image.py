"""The trainer image (Dockerfile target `trainer`), run with podman as a trial pod's
container runs: the contract's environment, the summary to /dev/termination-log.

Covers: it runs as the numeric non-root user 65532; a built-in trial trains on the CPU,
pauses at its rung serving every series of the metrics contract with the trial's labels,
goes on at the sweep's go-ahead, exits 0 and leaves its summary at the termination path.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lrsweep import contract
from lrsweep.runtime.local import free_port
from tests.harness.pytest_plugin import wait_for
from tests.images.build import Images
from tests.images.containers import Container, podman_run, writable_file

pytestmark = pytest.mark.images

RUNG = 10
STEPS = 20


@dataclass(frozen=True)
class Trial:
    """What a trainer container showed: its metrics while paused at the rung, its exit code,
    its termination message, its log."""

    metrics: str
    exit_code: int
    termination_message: str
    log: str

    def summary(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.termination_message)
        return document


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text: str = answer.read().decode()
    except OSError:
        return None
    return text if f'lrsweep_trial_step{{sweep="image",trial="t001"}} {RUNG}.0' in text else None


@pytest.fixture(scope="module")
def trial(lrsweep_images: Images, tmp_path_factory: pytest.TempPathFactory) -> Trial:
    """One built-in trial in a trainer container: scraped at its rung, let go on, finished."""
    termination = writable_file(tmp_path_factory.mktemp("trainer") / "termination-log")
    port = free_port()
    container = Container(
        lrsweep_images.trainer.name,
        env={
            "LRSWEEP_LEARNING_RATE": "0.05",
            "LRSWEEP_MAX_STEPS": str(STEPS),
            "LRSWEEP_EVAL_EVERY": str(RUNG),
            "LRSWEEP_SEED": "1",
            "LRSWEEP_SWEEP": "image",
            "LRSWEEP_TRIAL": "t001",
            "LRSWEEP_METRICS_PORT": str(port),
            "LRSWEEP_METRICS_HOST": "127.0.0.1",
            "LRSWEEP_RUNGS": str(RUNG),
            "LRSWEEP_GATE_TIMEOUT": "120",
            "LRSWEEP_OBJECTIVE": "val_loss",
            "LRSWEEP_DEVICE": "cpu",
        },
        volumes=[(termination, "/dev/termination-log")],
    )
    container.start()
    try:
        base = f"http://127.0.0.1:{port}"
        metrics = wait_for(
            lambda: _scrape(f"{base}/metrics"),
            timeout=120,
            interval=0.5,
            message=lambda: f"the trial to pause at step {RUNG}:\n{container.logs()}",
        )
        go_on = urllib.request.Request(f"{base}/continue?step={RUNG}", method="POST")
        with urllib.request.urlopen(go_on, timeout=5):
            pass
        exit_code = container.wait(timeout=120)
        return Trial(metrics, exit_code, termination.read_text(), container.logs())
    finally:
        container.remove()


def test_runs_as_the_numeric_non_root_user(lrsweep_images: Images) -> None:
    done = podman_run(lrsweep_images.trainer.name, "-u", entrypoint="id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "65532"


def test_serves_every_series_of_the_metrics_contract_with_the_trial_labels(trial: Trial) -> None:
    samples = [
        sample
        for family in text_string_to_metric_families(trial.metrics)
        for sample in family.samples
        if sample.name.startswith("lrsweep_trial_")
    ]
    assert {s.name for s in samples} >= set(contract.BOUNDED_SERIES)
    assert all(s.labels["sweep"] == "image" and s.labels["trial"] == "t001" for s in samples)


def test_finishes_after_the_go_ahead_with_exit_code_0(trial: Trial) -> None:
    assert trial.exit_code == 0, trial.log


def test_writes_its_summary_to_the_termination_path(trial: Trial) -> None:
    summary = trial.summary()
    assert summary["trial"] == "t001"
    assert summary["status"] == "finished"
    assert summary["step"] == STEPS
