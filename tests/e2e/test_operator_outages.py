"""What happens to sweeps while the operator is down, and to the operator while the API is.

Covers: a sweep deleted while the operator is down goes at once, its trial pods with it
(garbage collection of their ownerReferences); a sweep an earlier operator put its
finalizer on loses it, so it deletes like any other; deleting the CRD with sweeps and their
pods, the operator down, completes; a minute of API errors on the sweeps does not end the
operator, /healthz says the API is failing meanwhile and ok after, and the sweep then ends
with the winner it has without the errors; an operator whose first listing of trial pods is
answered late launches no trial until it has that listing, then sweeps to the same winner;
the operator asks the API server for trial pods only (every listing or watch of pods without
a label selector failing, its sweep ends with its winner).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Operator, apply, install_crd, wait_phase
from tests.e2e.test_operator import local_winner, needs_local_kubelet, toy_sweep
from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness.threaded import ThreadedHarness

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

LEGACY_FINALIZER = "lrsweep.dev/finalizer"
# kopf's listing of trial pods (those with the sweep label: not its watch, nor the operator's
# own listing of one sweep's pods), and any listing or watch of pods without a label selector.
KOPF_POD_LISTING = r"^GET /api/v1/namespaces/[^/]+/pods\?labelSelector=lrsweep\.dev(/|%2F)sweep$"
UNFILTERED_PODS = r"^GET /api/v1/namespaces/[^/]+/pods(\?(?!.*labelSelector=)|$)"


def trial_pods(cluster: KubeCluster, namespace: str, sweep: str) -> list[str]:
    out = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"lrsweep.dev/sweep={sweep}", "-o", "name"
    ).stdout
    return out.split()


def sweeps(cluster: KubeCluster, namespace: str) -> list[str]:
    return cluster.kubectl("get", "lrs", "-n", namespace, "-o", "name").stdout.split()


def slow_sweep(name: str) -> dict[str, Any]:
    return toy_sweep(name, {"strategy": "grid", "values": [0.05, 0.1]}, {"TOY_BEHAVIOUR": "slow"})


@contextlib.contextmanager
def faults(harness: ThreadedHarness, **settings: Any) -> Iterator[None]:
    """The test cluster answers with these faults inside the block, and none after it."""
    harness.set_faults(**settings)
    try:
        yield
    finally:
        harness.reset_faults()


def ends_with_local_winner(
    kube_cluster: KubeCluster,
    namespace: str,
    doc: dict[str, Any],
    operator: Operator,
    tmp_path: Path,
) -> None:
    name = doc["metadata"]["name"]
    sweep = wait_phase(kube_cluster, namespace, name, ("Succeeded", "Failed"), 120)
    assert sweep["status"]["phase"] == "Succeeded", operator.log()[-3000:]
    assert sweep["status"]["bestLearningRate"] == local_winner(doc, tmp_path)


def health(operator: Operator) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{operator.health_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, {}
    except urllib.error.URLError:  # not serving yet
        return 0, {}


def test_a_sweep_deleted_while_the_operator_is_down_goes_with_its_pods(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    apply(kube_cluster, kube_namespace, slow_sweep("orphan"))
    wait_for(
        lambda: trial_pods(kube_cluster, kube_namespace, "orphan"),
        timeout=60,
        interval=0.5,
        message="trial pods of 'orphan'",
    )
    operator.stop()
    kube_cluster.kubectl("delete", "lrs", "orphan", "-n", kube_namespace, "--timeout=20s")
    wait_for(
        lambda: not trial_pods(kube_cluster, kube_namespace, "orphan"),
        timeout=60,
        interval=0.5,
        message="the trial pods of the deleted sweep to go",
    )


def test_a_sweep_with_an_earlier_operators_finalizer_loses_it(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    doc = slow_sweep("legacy")
    doc["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    apply(kube_cluster, kube_namespace, doc)

    def finalizers() -> list[str]:
        out = kube_cluster.kubectl(
            "get", "lrs", "legacy", "-n", kube_namespace, "-o", "jsonpath={.metadata.finalizers}"
        ).stdout
        found: list[str] = json.loads(out) if out else []
        return found

    wait_for(
        lambda: LEGACY_FINALIZER not in finalizers(),
        timeout=30,
        interval=0.5,
        message=lambda: f"the old finalizer to go, finalizers {finalizers()}",
    )
    operator.stop()
    kube_cluster.kubectl("delete", "lrs", "legacy", "-n", kube_namespace, "--timeout=20s")


def test_deleting_the_crd_with_sweeps_and_the_operator_down_completes(
    kube_cluster: KubeCluster, kube_namespace: str, operator: Operator
) -> None:
    needs_local_kubelet(kube_cluster)
    for name in ("one", "two"):
        apply(kube_cluster, kube_namespace, slow_sweep(name))
    wait_for(
        lambda: (
            trial_pods(kube_cluster, kube_namespace, "one")
            and trial_pods(kube_cluster, kube_namespace, "two")
        ),
        timeout=60,
        interval=0.5,
        message="trial pods of both sweeps",
    )
    operator.stop()
    try:
        kube_cluster.kubectl("delete", "crd", "lrsweeps.lrsweep.dev", "--timeout=30s")
        wait_for(
            lambda: (
                not trial_pods(kube_cluster, kube_namespace, "one")
                and not trial_pods(kube_cluster, kube_namespace, "two")
            ),
            timeout=60,
            interval=0.5,
            message="the trial pods of the CRD's sweeps to go",
        )
    finally:
        install_crd(kube_cluster)  # the other tests' CRD


def test_a_minute_of_api_errors_leaves_the_operator_running_and_healthz_says_so(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    operator: Operator,
    harness: ThreadedHarness,
    tmp_path: Path,
) -> None:
    needs_local_kubelet(kube_cluster)
    # Slow trials: the sweep is still running (and writing its status) when the outage
    # starts; the default toy's can be over within a second or two of the apply.
    doc = slow_sweep("outage")
    apply(kube_cluster, kube_namespace, doc)
    # Running: the operator has launched its trials, whose ends (seconds from now) it must
    # write while the outage lasts. A sweep already over would need no request at all.
    wait_phase(kube_cluster, kube_namespace, "outage", ("Running",), 30)
    # Every request about sweeps fails: kopf's watch and the reconciles' reads alike.
    seen: list[tuple[int, dict[str, Any]]] = []
    with faults(harness, error_rate=1.0, match="lrsweeps"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert operator.process is not None
            assert operator.process.poll() is None, operator.log()[-3000:]
            seen.append(health(operator))
            time.sleep(2)
    reports = [body.get("reconciler", {}).get("kubernetesApi", "") for _, body in seen]
    assert all(code == 200 for code, _ in seen), seen
    assert any(report.startswith("failing for") for report in reports), reports
    ends_with_local_winner(kube_cluster, kube_namespace, doc, operator, tmp_path)
    assert health(operator)[1]["reconciler"]["kubernetesApi"] == "ok"


def test_no_trial_is_launched_before_kopf_has_listed_the_trial_pods(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    operator: Operator,
    harness: ThreadedHarness,
    tmp_path: Path,
) -> None:
    needs_local_kubelet(kube_cluster)
    lag = 5.0
    operator.stop()
    doc = toy_sweep("listed", {"strategy": "grid", "values": [0.05, 0.1]})
    apply(kube_cluster, kube_namespace, doc)
    with faults(harness, latency=lag, match=KOPF_POD_LISTING):
        started = time.monotonic()
        operator.start()
        wait_for(
            lambda: trial_pods(kube_cluster, kube_namespace, "listed"),
            timeout=60 + lag,
            interval=0.2,
            message="trial pods of 'listed'",
        )
        first_pod = time.monotonic()
    # kopf's listing of the trial pods is answered `lag` seconds after the operator asks for
    # it at the earliest: no trial pod may exist before then.
    assert first_pod - started >= lag, operator.log()[-3000:]
    ends_with_local_winner(kube_cluster, kube_namespace, doc, operator, tmp_path)


def test_the_operator_asks_the_api_server_for_trial_pods_only(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    operator: Operator,
    harness: ThreadedHarness,
    tmp_path: Path,
) -> None:
    needs_local_kubelet(kube_cluster)
    operator.stop()
    doc = toy_sweep("filtered", {"strategy": "grid", "values": [0.05, 0.1]})
    with faults(harness, error_rate=1.0, match=UNFILTERED_PODS):
        operator.start()
        apply(kube_cluster, kube_namespace, doc)
        ends_with_local_winner(kube_cluster, kube_namespace, doc, operator, tmp_path)
        assert harness.faults_injected() == 0
