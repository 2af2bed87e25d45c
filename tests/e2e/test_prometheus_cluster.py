"""The dashboard and alerts against the real operator on the test cluster.

Covers the same checks as tests/packaging/test_prometheus_live.py (re-used here), with the
one seam, `targets`, pointing at live things instead of stand-ins: `lrsweep operator`
running against the test cluster, which has run a short grid sweep of the quickstart's task
to completion (best score, ended trials), is running a long quickstart-task trial as a pod
(scraped at its pod IP), has failed a sweep with an invalid template, holds a GPU sweep
whose pod cannot be scheduled (too young for the no-progress alert), and has met injected
API errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Operator, apply, install_crd, wait_phase
from tests.e2e.conftest import QUICKSTART
from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.packaging import test_prometheus_live as live

# One xdist worker runs the module, so that its Prometheus and trial pod start once.
pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.xdist_group("prometheus-cluster")]

# The checks, run here against the cluster's targets.
prometheus = live.prometheus
scraped = live.scraped
test_prometheus_scrapes_the_trainer_and_the_operator = (
    live.test_prometheus_scrapes_the_trainer_and_the_operator
)
test_every_rule_loads_and_evaluates_healthily = live.test_every_rule_loads_and_evaluates_healthily
test_every_rule_expression_evaluates = live.test_every_rule_expression_evaluates
test_every_dashboard_query_evaluates_instant_and_range = (
    live.test_every_dashboard_query_evaluates_instant_and_range
)
test_the_sweep_variable_offers_the_live_sweep = live.test_the_sweep_variable_offers_the_live_sweep
test_the_trial_panels_show_the_live_trials = live.test_the_trial_panels_show_the_live_trials
test_every_operator_panel_returns_data = live.test_every_operator_panel_returns_data
test_the_operator_series_keep_the_sweeps_namespace = (
    live.test_the_operator_series_keep_the_sweeps_namespace
)
test_a_failed_sweep_fires_lrsweep_failed = live.test_a_failed_sweep_fires_lrsweep_failed
test_no_progress_is_pending_only_for_sweeps_whose_trials_do_not_advance = (
    live.test_no_progress_is_pending_only_for_sweeps_whose_trials_do_not_advance
)


def _quickstart(name: str, **search: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["search"].update(search)
    return doc


@pytest.fixture(scope="module")
def targets(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.Targets]:
    harness = kube_cluster.harness
    if harness is None or not kube_cluster.capabilities.local_kubelet:
        pytest.skip("scrapes pod IPs from this machine and injects faults: needs the harness")
    namespace = f"prom-{tmp_path_factory.mktemp('ns').name[-6:].lower().strip('_-')}x"
    kube_cluster.kubectl("create", "namespace", namespace)
    install_crd(kube_cluster)
    op = Operator(kube_cluster, namespace, tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    try:
        # A short grid of the quickstart's task: a sweep with a best score and ended trials
        # (the quickstart itself runs in tests/e2e/test_operator.py).
        scored = _quickstart("scored", strategy="grid", values=[0.05, 0.5])
        scored["spec"]["budget"].update(steps=100, evalEvery=25, minSteps=25)
        apply(kube_cluster, namespace, scored)
        # One API error the operator meets (and survives) for the API-errors panel: on a pod
        # it creates, since kopf's own watch of the pods retries its errors uncounted.
        harness.set_faults(error_rate=1.0, budget=1, match="^POST .*/pods")
        wait_phase(kube_cluster, namespace, "scored", ("Succeeded",), 400)
        harness.reset_faults()

        long = _quickstart("live", strategy="grid", values=[0.05])
        long["spec"]["budget"].update(steps=1_000_000, evalEvery=20, minSteps=20)
        apply(kube_cluster, namespace, long)
        broken = _quickstart("broken")
        broken["spec"]["trial"]["template"]["spec"]["containers"] = []
        apply(kube_cluster, namespace, broken)
        stalled = _quickstart("stalled", strategy="grid", values=[0.05])
        trainer = stalled["spec"]["trial"]["template"]["spec"]["containers"][0]
        trainer["resources"] = {"limits": {"nvidia.com/gpu": 1}}
        apply(kube_cluster, namespace, stalled)
        wait_phase(kube_cluster, namespace, "broken", ("Failed",), 60)

        def live_pod_ip() -> str | None:
            out = kube_cluster.kubectl(
                "get", "pods", "-n", namespace, "-l", "lrsweep.dev/sweep=live", "-o", "json"
            ).stdout
            pods = [p for p in json.loads(out)["items"] if p["status"].get("phase") == "Running"]
            return pods[0]["status"].get("podIP") if pods else None

        ip = wait_for(live_pod_ip, timeout=60, interval=0.5, message="the live trial pod")
        yield live.Targets(
            operator=f"127.0.0.1:{op.metrics_port}",
            trials=(f"{ip}:9090",),
            namespace=namespace,
            sweep="live",
            failed_sweeps=("broken",),
            # "stalled" launched its trial moments ago: LRSweepNoProgress waits for 20
            # minutes without progress, longer than a test. tests/packaging covers it with
            # an hour-old progress time, and promtool's rule tests with synthetic series.
            stalled_sweeps=(),
            scored_sweep="scored",
        )
    finally:
        harness.reset_faults()
        op.stop()
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    assert "Traceback" not in op.log(), op.log()[-5000:]
