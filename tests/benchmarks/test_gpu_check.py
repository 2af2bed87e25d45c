"""benchmarks.gpu_check: without CUDA it says so in one line and exits 0 (nothing may need a
GPU); the speed it reports excludes start-up, measured here on the CPU, as one process and
as two under torchrun."""

from __future__ import annotations

import pytest

from benchmarks import gpu_check


def test_without_cuda_the_check_says_so_and_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_check, "cuda_devices", lambda: (None, 0))
    assert gpu_check.main([]) == 0
    assert capsys.readouterr().out == (
        "gpu-check: skipped: CUDA is not available on this machine (torch sees no GPU)\n"
    )


def test_the_trainers_speed_is_measured_without_its_start_up() -> None:
    assert gpu_check.steps_per_second("regression", "cpu", 120) > 0


def test_the_two_process_speed_is_measured_under_torchrun() -> None:
    assert gpu_check.steps_per_second("regression", "cpu", 60, processes=2) > 0
