"""Strategies replayed on recorded runs (`lrsweep.benchmark.replay`, and the curve-following
backend it drives, `lrsweep.runtime.following.CurveBackend`).

Covers: a replayed trial reports one evaluation per poll of its recorded run and ends at the
budget; a gated trial waits at its rung until promoted; a run that diverged or failed ends
its trial that way where it stopped; a range test ends with its recorded curve; a sweep on
recorded runs picks the best and is charged every step its trials trained; a round's rates
without a recorded run are asked for together, before any trial moves, at the benchmark
seed plus each trial's seed; `random` draws the rates `lrsweep run` draws for the document;
each strategy keeps the document's other search settings; a winner at the end of the range
carries the engine's note.
"""

from __future__ import annotations

import pytest

from lrsweep.api import Strategy
from lrsweep.benchmark.cache import CurveCache, RangeTestKey
from lrsweep.benchmark.replay import MissingRunsError, replay, with_strategy
from lrsweep.engine import space
from lrsweep.engine.sweep import Launch, Promote
from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.following import Curve, CurveBackend
from tests.unit.benchmark.conftest import EVERY, RATES, STEPS, run, sweep_doc


def _backend(curve: Curve) -> CurveBackend:
    return CurveBackend(train=lambda launch, until: curve, range_test=lambda launch: curve)


def _launch(*, gated: bool = False, mode: str = "train") -> Launch:
    return Launch(
        "t000", 1, 0.1, 0, "train" if mode == "train" else "range-test", STEPS, EVERY,
        (EVERY, STEPS), gated=gated,
    )  # fmt: skip


def test_a_replayed_trial_reports_one_evaluation_per_poll_until_the_budget() -> None:
    backend = _backend(run(0.1, 0.5))
    backend.launch(_launch())
    seen = [backend.observe()[0] for _ in range(3)]
    assert [(o.state, o.step) for o in seen] == [
        (ProcessState.RUNNING, 10),
        (ProcessState.RUNNING, 20),
        (ProcessState.EXITED, 30),
    ]
    assert seen[-1].outcome is Outcome.FINISHED
    assert [p.step for p in seen[0].points] == [0, 10]
    assert backend.observe() == []


def test_a_gated_trial_waits_at_its_rung_until_promoted() -> None:
    backend = _backend(run(0.1, 0.5))
    backend.launch(_launch(gated=True))
    assert backend.observe()[0].step == EVERY
    assert backend.observe() == []
    backend.promote(Promote("t000", 1, EVERY))
    assert backend.observe()[0].step == 2 * EVERY


def test_a_run_that_diverged_ends_its_trial_diverged_where_it_stopped() -> None:
    backend = _backend(run(0.1, 0.5, end=20, diverged=True))
    backend.launch(_launch())
    backend.observe()
    ended = backend.observe()[0]
    assert (ended.state, ended.outcome, ended.step) == (ProcessState.EXITED, Outcome.DIVERGED, 20)


def test_a_run_that_failed_ends_the_attempt_failed_with_its_reason() -> None:
    failed = Curve(0.1, run(0.1, 0.5).points[:1], 0, failure="exit code 1: out of memory")
    backend = _backend(failed)
    backend.launch(_launch())
    ended = backend.observe()[0]
    assert (ended.outcome, ended.reason) == (Outcome.FAILED, "exit code 1: out of memory")


def test_a_range_test_ends_with_its_recorded_curve() -> None:
    recorded = Curve(0.001, (), 18, range_curve=((0.001, 2.0), (0.01, 1.0), (0.1, 9.0)))
    backend = _backend(recorded)
    backend.launch(_launch(mode="range-test"))
    ended = backend.observe()[0]
    assert (ended.outcome, ended.step) == (Outcome.FINISHED, 18)
    assert tuple(ended.range_curve) == recorded.range_curve


def test_grid_picks_the_best_recorded_run_and_is_charged_every_step_trained(
    cache: CurveCache,
) -> None:
    finals = {0.001: 0.9, 0.01: 0.2, 0.1: 0.4}
    for rate, final in finals.items():
        cache.put_train(rate, 0, run(rate, final))
    cache.put_train(1.0, 0, run(1.0, 1.0, end=10, diverged=True))
    result = replay(sweep_doc(candidates=4), Strategy.GRID, 0, cache)
    assert result.rate == 0.01
    assert result.compute_r == pytest.approx((3 * STEPS + 10) / STEPS)
    assert result.trials == 4


def test_a_round_asks_for_all_its_rates_without_runs_before_any_trial_moves(
    cache: CurveCache,
) -> None:
    cache.put_train(0.01, 0, run(0.01, 0.2))
    with pytest.raises(MissingRunsError) as asked:
        replay(sweep_doc(candidates=4), Strategy.GRID, 0, cache)
    assert asked.value.runs == {(0.001, 0), (0.1, 0), (1.0, 0)}


def test_trial_seeds_follow_the_runs_at_the_benchmark_seed_plus_their_own(
    cache: CurveCache,
) -> None:
    with pytest.raises(MissingRunsError) as asked:
        replay(sweep_doc(candidates=4, seeds=2), Strategy.GRID, 3, cache)
    assert {seed for _, seed in asked.value.runs} == {3, 4}


def test_random_draws_the_rates_lrsweep_run_draws_for_the_document(cache: CurveCache) -> None:
    with pytest.raises(MissingRunsError) as asked:
        replay(sweep_doc("mine", candidates=3), Strategy.RANDOM, 0, cache)
    drawn = space.log_uniform(0.001, 1.0, 3, seed="mine")
    assert asked.value.runs == {(rate, 0) for rate in drawn}


def test_each_strategy_keeps_the_documents_other_search_settings() -> None:
    spec = with_strategy(sweep_doc(candidates=6, seeds=2, parallelism=3).spec, Strategy.ASHA)
    search = spec.search
    assert (search.strategy, search.candidates, search.seeds, search.parallelism) == (
        Strategy.ASHA, 6, 2, 3,
    )  # fmt: skip


def test_a_winner_at_the_end_of_the_range_carries_the_engines_note(cache: CurveCache) -> None:
    for rate, final in zip(RATES, (0.1, 0.2, 0.4, 0.8), strict=True):
        cache.put_train(rate, 0, run(rate, final))
    result = replay(sweep_doc(candidates=4), Strategy.GRID, 0, cache)
    assert result.rate == 0.001
    assert "at the end of the search range: move search.min" in result.note


def test_the_range_test_a_sweep_launches_is_the_one_recorded(cache: CurveCache) -> None:
    doc = sweep_doc(strategy="rangeTest")
    curve = [(0.001 * 1.5**k, 1.0 - 0.05 * k) for k in range(12)] + [(0.2, 50.0)]
    cache.put_range_test(
        RangeTestKey(0, 30, 0.001, 1.0), Curve(0.001, (), 30, range_curve=tuple(curve))
    )
    with pytest.raises(MissingRunsError) as asked:
        replay(doc, Strategy.RANGE_TEST, 0, cache)
    ((rate, seed),) = asked.value.runs
    assert 0.001 < rate < 0.2
    assert seed == 0
