"""A reconcile reads a sweep's pods from the operator's watch (kopf's index of trial pods)
rather than listing them every tick.

Covers: with the watch holding every pod the stored status expects, a reconcile lists
nothing; a pod the watch has not seen yet (created since its last event) and a last LIST
older than RELIST_SECONDS each make it list; the pods the status expects are the current
attempts of launched trials not yet decided, queued or parked.
"""

from __future__ import annotations

import copy
from typing import Any

from lrsweep.api import LRSweepStatus
from lrsweep.runtime.cluster import RELIST_SECONDS
from lrsweep.runtime.observe import launched_pods
from tests.unit.runtime.test_reconcile import MemoryCluster, body, run


class WatchedCluster(MemoryCluster):
    """A MemoryCluster whose pods the watch shows as `watched` (a copy taken by `see`)."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[str, dict[str, Any]] = {}
        self.now = 0.0
        self.pod_index = lambda namespace, sweep: list(self.watched.values())
        self.clock = lambda: self.now

    def see(self) -> None:
        self.watched = copy.deepcopy(self.pods)


def launched() -> tuple[WatchedCluster, dict[str, Any]]:
    """A sweep whose first reconcile launched its first trial (and listed its pods)."""
    cluster = WatchedCluster()
    first = run(cluster, body())
    assert first.status is not None
    return cluster, first.status


def test_a_reconcile_reads_the_pods_from_the_watch_when_it_holds_every_expected_pod() -> None:
    cluster, status = launched()
    cluster.see()
    lists = cluster.lists
    run(cluster, body(status=status))
    assert cluster.lists == lists


def test_a_pod_the_watch_has_not_seen_yet_makes_the_reconcile_list() -> None:
    cluster, status = launched()  # the watch has no event of the new pod yet
    lists = cluster.lists
    result = run(cluster, body(status=status))
    assert cluster.lists == lists + 1
    assert result.status is None or result.status["trials"]["t000"]["attempts"] == 1


def test_a_sweeps_pods_are_listed_again_after_relist_seconds() -> None:
    cluster, status = launched()
    cluster.see()
    cluster.now += RELIST_SECONDS
    lists = cluster.lists
    run(cluster, body(status=status))
    assert cluster.lists == lists + 1


def test_the_pods_expected_are_current_attempts_of_launched_undecided_trials() -> None:
    def trial(**fields: Any) -> dict[str, Any]:
        return {"learningRate": 0.1, "attempts": 2, "phase": "Running", "queued": False, **fields}

    status = LRSweepStatus.model_validate(
        {
            "trials": {
                "t0": trial(),
                "t1": trial(phase="Stopped"),
                "t2": trial(queued=True, phase="Pending"),
                "t3": trial(parkedAt=25, phase="Pending"),
                "t4": trial(attempts=0, phase="Pending"),
            }
        }
    )
    assert launched_pods(status) == {("t0", 2)}
