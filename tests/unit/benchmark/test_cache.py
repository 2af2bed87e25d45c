"""Where `lrsweep benchmark` keeps its runs (`lrsweep.benchmark.cache`).

Covers: the dense rates span the search range at most the ratio apart; the cache's directory
follows the trial program (editing the script moves it) and its budget, not the strategy,
range or seeds; runs written are read back by the next benchmark, failed ones are not; a
second benchmark of the same program at once is refused.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from lrsweep.api import SpecError
from lrsweep.benchmark import cache_directory
from lrsweep.benchmark.cache import CurveCache, dense_rates
from lrsweep.runtime.following import Curve
from tests.unit.benchmark.conftest import run, sweep_doc


def test_dense_rates_span_the_range_at_most_the_ratio_apart() -> None:
    rates = dense_rates(1e-4, 10.0, math.sqrt(2))
    assert (rates[0], rates[-1], len(rates)) == (1e-4, 10.0, 35)
    assert max(b / a for a, b in itertools.pairwise(rates)) <= math.sqrt(2)


def test_editing_the_script_moves_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text("loss = 1\n")
    before = cache_directory(sweep_doc())
    script.write_text("loss = 2\n")
    assert cache_directory(sweep_doc()) != before


def test_the_strategy_range_and_seeds_keep_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("loss = 1\n")
    other = sweep_doc(strategy="asha", min=1e-5, seeds=3)
    assert cache_directory(other) == cache_directory(sweep_doc())


def test_the_budget_moves_the_cache() -> None:
    assert cache_directory(sweep_doc(steps=60)) != cache_directory(sweep_doc())


def test_runs_written_are_read_back_by_the_next_benchmark(tmp_path: Path) -> None:
    with CurveCache(tmp_path, {}) as first:
        first.put_train(0.1, 2, run(0.1, 0.5))
    with CurveCache(tmp_path, {}) as second:
        assert second.train(0.1, 2) == run(0.1, 0.5)
        assert second.train(0.1, 0) is None


def test_failed_runs_are_not_kept_for_the_next_benchmark(tmp_path: Path) -> None:
    with CurveCache(tmp_path, {}) as first:
        first.put_train(0.1, 0, Curve(0.1, (), 0, failure="no data in ./data"))
        assert first.train(0.1, 0) is not None
    with CurveCache(tmp_path, {}) as second:
        assert second.train(0.1, 0) is None


def test_a_second_benchmark_of_the_same_program_at_once_is_refused(
    cache: CurveCache,
) -> None:
    with pytest.raises(SpecError, match="another `lrsweep benchmark` of this trial program"):
        CurveCache(cache.directory, {})
