"""Fixtures of the trainer tests: a clean LRSWEEP_* environment, a summary path."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LRSWEEP_* variable of the machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LRSWEEP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def summary_path(tmp_path: Path) -> Path:
    return tmp_path / "summary.json"


@pytest.fixture(autouse=True)
def restore_sigterm() -> Iterator[None]:
    """A session left unfinished by a failing test must not keep the runner's SIGTERM."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)
