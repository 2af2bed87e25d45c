"""Fixtures of the trainer tests: a clean LRSWEEP_* environment, a summary path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LRSWEEP_* variable of the machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LRSWEEP_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def summary_path(tmp_path: Path) -> Path:
    return tmp_path / "summary.json"
