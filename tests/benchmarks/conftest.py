"""One quick search-efficiency run per test session, shared by the benchmark smoke tests.

Every trial of a quick run is a process that imports torch, so a run costs minutes on a slow
machine. The search-efficiency smoke test checks the run itself; the parallelism, holdout
and signal tests start from copies of its caches (ground truth, finished strategy runs), the
way a user's second command does, and run only what the caches lack.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.benchmarks.running import run_module


@pytest.fixture(scope="session")
def quick_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory `python -m benchmarks.search_efficiency --quick` wrote (read-only: use
    `copy_caches` to build on it)."""
    out = tmp_path_factory.mktemp("search-efficiency-quick")
    run_module("benchmarks.search_efficiency", "--quick", "--jobs", "2", "--out", str(out))
    return out


def copy_caches(quick: Path, to: Path, *parts: str) -> Path:
    """`to`, holding copies of `parts` (files or directories) of the quick run's output, or
    of all of it when no part is named."""
    if not parts:
        shutil.copytree(quick, to)
        return to
    to.mkdir(parents=True, exist_ok=True)
    for part in parts:
        source = quick / part
        if source.is_dir():
            shutil.copytree(source, to / part)
        else:
            shutil.copy2(source, to / part)
    return to
