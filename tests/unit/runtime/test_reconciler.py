"""The operator's loop over the sweeps it knows, against an in-memory cluster.

Covers: no reconcile starts before kopf's watches have listed every sweep and pod (and
/healthz says so); a sweep in the index is reconciled and its status written, then its
events posted, and the pods that status no longer wants (a parked trial's) are deleted in
the same pass; a sweep whose index body is at the version the loop last read or wrote is not
read again, one at any other version is; one whose reconcile fails is tried again after a
backoff that doubles, while the others go on; a sweep gone from the index is reconciled no
more; at most `max_concurrent_reconciles` run at once, and how long a due sweep waited for
one of them is exported; a finished sweep, once tidied, costs no API call; an earlier
operator's finalizer is removed, and a sweep being deleted is not reconciled; /healthz's
report raises once the loop stops, and says when the API server fails (5xx, 429, no answer)
and when it answers again, an operation failing while others answer, and not a failure left
unrepeated for two minutes; kopf's retries of its own calls never run out. A woken sweep (a
trial pod of it ended) is reconciled at the next tick, or right after the reconcile under
way, but not while it backs off after a failure.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Mapping
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from lrsweep.controller import Backoffs
from lrsweep.runtime.cluster import ApiHealth
from lrsweep.runtime.reconciler import LEGACY_FINALIZER, Key, Reconciler
from lrsweep.settings import OperatorSettings
from tests.unit.runtime.test_reconcile import (
    GATED,
    NO_GPU,
    MemoryCluster,
    body,
    run,
)


class LoopCluster(MemoryCluster):
    """A MemoryCluster that also records status writes, events and finalizer removals."""

    def __init__(self) -> None:
        super().__init__()
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[str] = []
        self.dropped: list[str] = []
        self.fail_reads: set[str] = set()  # sweeps whose reads answer 503

    async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        if name in self.fail_reads:
            raise ApiException(status=503, reason="Service Unavailable")
        self.reads += 1
        stored = copy.deepcopy(self.sweep)
        if stored is not None:
            stored["metadata"]["name"] = name
        found: dict[str, Any] | None = stored
        return found

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str | None:
        self.patches.append((name, patch))
        return f"written-{len(self.patches)}"

    async def post_event(
        self, sweep: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        self.events.append(reason)

    async def drop_finalizer(self, sweep: Mapping[str, Any], finalizer: str) -> None:
        self.dropped.append(sweep["metadata"]["name"])


def named(name: str, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    doc: dict[str, Any] = body(status=status)
    doc["metadata"].update(name=name, uid=f"uid-{name}", **meta)
    return doc


def loop(
    cluster: LoopCluster, index: dict[Key, dict[str, Any]], **settings: Any
) -> tuple[Reconciler, list[float]]:
    """A Reconciler over `index`, on a clock the test moves (the list's one element)."""
    now = [0.0]
    reconciler = Reconciler(
        cluster,
        OperatorSettings(reconcile_interval=2.0, **settings),
        lambda: index,
        clock=lambda: now[0],
        watches_listed=True,
    )
    return reconciler, now


async def settle(reconciler: Reconciler) -> None:
    """Start what is due and let it finish."""
    reconciler.start_due()
    for _ in range(50):
        await asyncio.sleep(0)
    await reconciler.stop()


def test_a_sweep_in_the_index_is_reconciled_its_status_written_and_events_posted() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a")
    reconciler, _ = loop(cluster, {("ml", "a"): named("a")})
    asyncio.run(settle(reconciler))
    assert [name for name, _ in cluster.patches] == ["a"]
    assert cluster.patches[0][1]["phase"] == "Running"
    assert "TrialStarted" in cluster.events


def test_no_reconcile_starts_before_kopfs_watches_have_listed_everything() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a")
    reconciler, _ = loop(cluster, {("ml", "a"): named("a")})
    reconciler.watches_listed = False
    asyncio.run(settle(reconciler))
    assert (cluster.reads, cluster.lists, cluster.patches) == (0, 0, [])
    assert reconciler.health()["watchesListed"] is False
    reconciler.watches_listed = True
    asyncio.run(settle(reconciler))
    assert [name for name, _ in cluster.patches] == ["a"]


def test_a_failing_sweep_is_retried_after_a_doubling_backoff_while_others_go_on() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("x")
    cluster.fail_reads = {"bad"}
    reconciler, now = loop(cluster, {("ml", "bad"): named("bad"), ("ml", "good"): named("good")})

    async def scenario() -> list[float]:
        due_times = []
        for _ in range(3):
            await settle(reconciler)
            due_times.append(reconciler._due[("ml", "bad")] - now[0])
            now[0] = reconciler._due[("ml", "bad")]
        return due_times

    assert asyncio.run(scenario()) == [2.0, 4.0, 8.0]
    assert {name for name, _ in cluster.patches} == {"good"}


def test_a_sweep_gone_from_the_index_is_reconciled_no_more() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a")
    index = {("ml", "a"): named("a")}
    reconciler, now = loop(cluster, index)

    async def scenario() -> None:
        await settle(reconciler)
        index.clear()
        now[0] += 10
        await settle(reconciler)

    asyncio.run(scenario())
    assert cluster.reads == 1
    assert reconciler._due == {}


def many(count: int) -> dict[Key, dict[str, Any]]:
    """An index of `count` sweeps, s0, s1, ..."""
    return {("ml", f"s{i}"): named(f"s{i}") for i in range(count)}


def test_no_more_reconciles_run_at_once_than_the_setting_allows() -> None:
    class Counting(LoopCluster):
        def __init__(self) -> None:
            super().__init__()
            self.now = self.most = 0

        async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
            self.now += 1
            self.most = max(self.most, self.now)
            await asyncio.sleep(0.01)
            self.now -= 1
            return await super().read_sweep(namespace, name)

    cluster = Counting()
    cluster.sweep = named("x")
    reconciler, _ = loop(cluster, many(10), max_concurrent_reconciles=3)
    asyncio.run(settle(reconciler))
    assert cluster.reads == 10
    assert cluster.most == 3


def test_the_time_a_due_sweep_waits_for_a_free_reconcile_is_exported() -> None:
    class Slow(LoopCluster):
        async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
            now[0] += 1.0  # each reconcile takes a second of the loop's clock
            return await super().read_sweep(namespace, name)

    cluster = Slow()
    cluster.sweep = named("x")
    reconciler, now = loop(cluster, many(2), max_concurrent_reconciles=1)
    asyncio.run(settle(reconciler))
    registry = cluster.telemetry.registry
    waits = registry.get_sample_value("lrsweep_reconcile_wait_seconds_sum")
    assert registry.get_sample_value("lrsweep_reconcile_wait_seconds_count") == 2
    assert waits == 1.0  # the second waited for the first


def test_a_finished_sweep_once_tidied_costs_no_api_call() -> None:
    cluster = LoopCluster()
    done = named("done", status={"phase": "Succeeded"})
    reconciler, now = loop(cluster, {("ml", "done"): done})

    async def scenario() -> None:
        await settle(reconciler)
        now[0] += 10
        await settle(reconciler)

    asyncio.run(scenario())
    assert cluster.lists == 1  # its pods, listed once to delete any left
    assert cluster.reads == 0
    assert cluster.patches == []


def test_an_earlier_operators_finalizer_is_removed() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("old")
    reconciler, _ = loop(cluster, {("ml", "old"): named("old", finalizers=[LEGACY_FINALIZER])})
    asyncio.run(settle(reconciler))
    assert cluster.dropped == ["old"]


def test_a_sweep_being_deleted_is_not_reconciled() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("going")
    going = named("going", deletionTimestamp="2026-01-01T00:00:00Z")
    reconciler, _ = loop(cluster, {("ml", "going"): going})
    asyncio.run(settle(reconciler))
    assert cluster.reads == 0
    assert cluster.patches == []


def test_health_raises_once_the_loop_has_not_run_for_long() -> None:
    reconciler, now = loop(LoopCluster(), {})
    reconciler.start_due()
    assert reconciler.health()["sweeps"] == 0
    now[0] += 31
    with pytest.raises(RuntimeError, match="has not run for over 30 s"):
        reconciler.health()


def test_health_says_when_the_api_server_fails_and_when_it_answers_again() -> None:
    now = [100.0]
    health = ApiHealth(clock=lambda: now[0])
    health.failed("read_sweep", "read_sweep: 503 Service Unavailable")
    now[0] = 112.0
    assert health.report().startswith("failing for 12 s (last: read_sweep: 503")
    health.answered("read_sweep")
    assert health.report() == "ok"


def test_health_reports_an_operation_failing_while_others_answer() -> None:
    health = ApiHealth()
    health.failed("patch_status", "patch_status: 503 Service Unavailable")
    health.answered("create_pod")
    assert health.report().startswith("failing for")


def test_health_forgets_a_failure_not_repeated_for_two_minutes() -> None:
    now = [100.0]
    health = ApiHealth(clock=lambda: now[0])
    health.failed("apply_configmap", "apply_configmap: 503 Service Unavailable")
    now[0] = 221.0
    assert health.report() == "ok"


@pytest.mark.parametrize(
    ("error", "failing"),
    [
        (ApiException(status=503, reason="Service Unavailable"), True),
        (ApiException(status=429, reason="Too Many Requests"), True),
        (urllib3.exceptions.MaxRetryError(None, "/", "refused"), True),  # type: ignore[arg-type]
        (ApiException(status=404, reason="Not Found"), False),
    ],
)
def test_a_call_that_gets_no_answer_counts_against_the_api_servers_health(
    error: Exception, failing: bool
) -> None:
    cluster = MemoryCluster()

    def call() -> None:
        raise error

    with pytest.raises(type(error)):
        asyncio.run(cluster._call("read_sweep", call))
    assert (cluster.health.report() != "ok") is failing


def test_kopfs_retries_of_its_own_calls_never_run_out() -> None:
    assert list(itertools.islice(Backoffs(), 6)) == [1.0, 2.0, 5.0, 10.0, 10.0, 10.0]
    assert not hasattr(Backoffs(), "__len__")  # kopf would count a sized one, and give up


def test_the_pods_a_written_status_parks_are_deleted_in_the_same_pass() -> None:
    cluster = LoopCluster()
    first = run(cluster, body(GATED))
    cluster.run_pod("s-t000-1", "10.0.0.1", {0: {"val_loss": "2"}, 10: {"val_loss": "1"}})
    for pod in ("s-t001-1", "s-t002-1"):
        cluster.pods[pod]["status"] = copy.deepcopy(NO_GPU)
    cluster.sweep = body(GATED, first.status)
    cluster.sweep["metadata"]["name"] = "s"
    reconciler, _ = loop(cluster, {("ml", "s"): cluster.sweep})
    asyncio.run(settle(reconciler))
    assert cluster.patches[-1][1]["trials"]["t000"]["parkedAt"] == 10
    assert cluster.deleted == ["s-t000-1"]


def test_a_sweep_the_index_shows_as_last_written_is_not_read_again() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a", resourceVersion="5")
    index = {("ml", "a"): named("a", resourceVersion="5")}
    reconciler, now = loop(cluster, index)

    async def scenario() -> None:
        await settle(reconciler)  # reads it (nothing known yet), writes a status
        index[("ml", "a")] = named("a", resourceVersion="written-1")  # the watch's event
        now[0] += 10
        await settle(reconciler)

    asyncio.run(scenario())
    assert cluster.reads == 1


def test_a_sweep_the_index_shows_at_another_version_is_read_afresh() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a", resourceVersion="5")
    index = {("ml", "a"): named("a", resourceVersion="5")}
    reconciler, now = loop(cluster, index)

    async def scenario() -> None:
        await settle(reconciler)
        now[0] += 10
        await settle(reconciler)  # the index still shows the body before the write

    asyncio.run(scenario())
    assert cluster.reads == 2


def test_a_woken_sweep_is_reconciled_at_the_next_tick_not_at_its_interval() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a")
    reconciler, now = loop(cluster, {("ml", "a"): named("a")})

    async def scenario() -> None:
        await settle(reconciler)
        now[0] += 0.5
        reconciler.wake(("ml", "a"))
        await settle(reconciler)

    asyncio.run(scenario())
    assert cluster.reads == 2


def test_a_sweep_woken_during_its_reconcile_is_due_again_when_it_ends() -> None:
    cluster = LoopCluster()
    cluster.sweep = named("a")
    reconciler, now = loop(cluster, {("ml", "a"): named("a")})

    async def scenario() -> float:
        reconciler.start_due()
        reconciler.wake(("ml", "a"))  # while the reconcile runs
        await settle(reconciler)
        return reconciler._due[("ml", "a")]

    assert asyncio.run(scenario()) == now[0]


def test_a_sweep_backing_off_after_a_failure_is_not_woken() -> None:
    cluster = LoopCluster()
    cluster.fail_reads = {"bad"}
    reconciler, now = loop(cluster, {("ml", "bad"): named("bad")})

    async def scenario() -> float:
        await settle(reconciler)
        reconciler.wake(("ml", "bad"))
        return reconciler._due[("ml", "bad")]

    assert asyncio.run(scenario()) == now[0] + 2.0
