"""Portable numerics (`--portable-numerics`): the same results whatever the CPU offers.

A CPU with fewer instructions is imitated on this one by capping MKL's and oneDNN's
instruction sets (every x86-64 machine that runs torch has more than SSE4.2). The run is
the benchmark's digits-cnn at its best rate: Adam at a high constant rate magnifies a
rounding difference into a different final loss within its 360 steps.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.unit.trainer.helpers import read_summary, run_trainer, subprocess_env

RUN = [
    *("--task", "digits-cnn", "--optimizer", "adam", "--schedule", "constant"),
    *("--lr", "0.02412", "--steps", "360", "--eval-every", "20", "--seed", "0"),
]
LESSER_CPU = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}


@cache
def _val_losses(directory: Path, *flags: str, lesser_cpu: bool = False, **env: str) -> list[float]:
    """The validation losses of one run, in a fresh process (kernels are chosen per process)."""
    summary = directory / f"{'-'.join([*flags, *env, str(lesser_cpu)]) or 'native'}.json"
    variables = {**(LESSER_CPU if lesser_cpu else {}), **env}
    done = run_trainer(*RUN, *flags, "--termination-path", str(summary), env=variables)
    assert done.returncode == 0, done.stderr
    losses: list[float] = read_summary(summary)["history"]["val_loss"]
    return losses


@pytest.fixture(scope="module")
def numerics_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("numerics")


def test_native_numerics_change_with_the_cpus_instruction_set(numerics_runs: Path) -> None:
    # Why portable numerics exists: the same seed and rate, another result.
    assert _val_losses(numerics_runs) != _val_losses(numerics_runs, lesser_cpu=True)


def test_portable_numerics_give_the_same_results_on_a_lesser_cpu(numerics_runs: Path) -> None:
    portable = _val_losses(numerics_runs, "--portable-numerics")
    assert portable == _val_losses(numerics_runs, "--portable-numerics", lesser_cpu=True)
    assert portable != _val_losses(numerics_runs)  # it did change the kernels


def test_portable_numerics_can_be_asked_for_by_the_environment(numerics_runs: Path) -> None:
    by_environment = _val_losses(numerics_runs, LRSWEEP_PORTABLE_NUMERICS="true")
    assert by_environment == _val_losses(numerics_runs, "--portable-numerics")


def test_asking_after_torch_has_computed_is_an_error_that_says_when_to_ask() -> None:
    script = (
        "import torch; torch.ones(2) + 1\n"
        "from lrsweep_trainer.numerics import use_portable_numerics\n"
        "use_portable_numerics()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "before any tensor computation" in done.stderr
