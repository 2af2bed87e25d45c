"""The scale benchmark (`python -m benchmarks.scale`).

Covers: a tiny run (two sizes, a few trials) writes scale.json with every field of its schema
for each size, and the operator's reconcile times from its /metrics, and the plot beside
it; the concurrency share weighs the pods running against those asked for, over each sweep's
life only, and puts each slot lost down to the sweep's first pod not yet created, a pod
starting, an ended pod's trial waiting to be decided, or no pod; the status lag counts a pod
that ended on its own, not one the sweep stopped; the restart window is left out; a run that
misses a target names the part nearer a whole core.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.scale import (
    PodEvent,
    SweepEvent,
    concurrency,
    concurrency_share,
    limit,
    status_lags,
)
from tests.benchmarks.running import run_module

SCHEMA = {
    "sweeps",
    "trials_per_sweep",
    "parallelism",
    "concurrency_share",
    "first_pod_p95_s",
    "status_lag_p95_intervals",
    "rss_mib",
    "cpu_cores",
    "api_rps",
    "resume_s",
    "winners_match",
}


def pod(at: float, name: str, *, running: bool = False, ended: bool = False) -> PodEvent:
    return PodEvent(at, "s", name, name.split("-")[0], 1, running, ended)


def _one_slot_over_ten_seconds() -> dict[str, float]:
    """Parallelism 1, two trials, applied at 0: t0's pod is created at 1, starts 1-2 s, runs
    2-4, ends on its own at 4 and is decided at 6; t1's pod is created at 7, starts 7-8, runs
    8-10."""
    events = [
        pod(1.0, "t0-1"),
        pod(2.0, "t0-1", running=True),
        pod(4.0, "t0-1", ended=True),
        pod(7.0, "t1-1"),
        pod(8.0, "t1-1", running=True),
    ]
    share, lost = concurrency(raw(events, [sweep(6.0, 1, ("t0",))]), 1, 2)
    assert share == 0.4
    return lost


def sweep(at: float, undecided: int, decided: tuple[str, ...] = (), phase: str = "") -> SweepEvent:
    return SweepEvent(at, "s", phase, undecided, frozenset(decided), 100, None)


def raw(pods: list[PodEvent], sweeps: list[SweepEvent], **more: Any) -> dict[str, Any]:
    return {
        "names": ["s"],
        "applied": {"s": 0.0},
        "ended": 10.0,
        "restart": None,
        "pods": pods,
        "sweeps": sweeps,
        **more,
    }


def test_a_tiny_run_writes_every_field_of_the_schema_and_a_plot(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run_module(
        "benchmarks.scale",
        *("--sweeps", "1", "2", "--trials", "4", "--parallelism", "2"),
        *("--step-seconds", "0.02", "--timeout", "120", "--out", str(out)),
    )
    runs = json.loads(out.read_text())["runs"]
    assert [r["sweeps"] for r in runs] == [1, 2]
    for run in runs:
        assert set(run) >= SCHEMA
        assert 0.0 < run["concurrency_share"] <= 1.0
        assert run["api_rps"]["total"] > 0
        assert isinstance(run["winners_match"], bool)
        assert run["operator_reconciles"]["reconcile_mean_s"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def test_the_share_is_the_pods_running_over_those_asked_for_while_the_sweep_lives() -> None:
    # Two trials asked for (parallelism 2) from 0 to 10 s; one pod runs from 0, one from 5.
    events = [pod(0.0, "t0-1", running=True), pod(5.0, "t1-1", running=True)]
    share = concurrency_share(raw(events, [sweep(10.0, 0, phase="Succeeded")]), 2, 2)
    assert share == 0.75


def test_a_sweep_asks_for_no_more_pods_than_it_has_trials_undecided() -> None:
    events = [pod(0.0, "t0-1", running=True)]
    share = concurrency_share(raw(events, [sweep(0.0, 1)]), 4, 4)
    assert share == 1.0


def test_slots_lost_before_the_sweeps_first_pod_are_put_down_to_not_started() -> None:
    assert _one_slot_over_ten_seconds()["not_started"] == 0.1


def test_a_slot_lost_while_its_pod_starts_is_put_down_to_starting() -> None:
    assert _one_slot_over_ten_seconds()["starting"] == 0.2


def test_a_slot_lost_while_an_ended_pods_trial_waits_to_be_decided_awaits_the_operator() -> None:
    assert _one_slot_over_ten_seconds()["awaiting_operator"] == 0.2


def test_a_slot_lost_with_no_pod_at_all_is_put_down_to_no_pod() -> None:
    assert _one_slot_over_ten_seconds()["no_pod"] == 0.1


def test_the_status_lag_counts_pods_that_ended_on_their_own_only() -> None:
    events = [pod(1.0, "t0-1", ended=True), pod(4.0, "t1-1", ended=True)]
    decided = [sweep(2.0, 1, ("t1",)), sweep(3.0, 0, ("t0", "t1"))]
    assert status_lags(raw(events, decided)) == [2.0]  # t1 was stopped before its pod ended


def test_pods_ending_while_the_operator_restarts_are_left_out() -> None:
    events = [pod(1.0, "t0-1", ended=True)]
    during = raw(events, [sweep(3.0, 0, ("t0",))], restart=(0.5, 1.0, 2.0))
    assert status_lags(during) == []


def test_a_missed_target_names_the_part_nearer_a_whole_core() -> None:
    run = {
        "concurrency_share": 0.5,
        "first_pod_p95_s": 1.0,
        "status_lag_p95_intervals": 1.0,
        "rss_mib": 100.0,
        "cpu_cores": 0.3,
        "cluster_cpu_cores": 0.95,
        "resume_s": 5.0,
        "winners_match": True,
    }
    assert limit(run).startswith("test cluster")
    assert "concurrency_share" in limit(run)
