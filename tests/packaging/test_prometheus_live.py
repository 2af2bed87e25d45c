"""A real Prometheus server scrapes live LRSweep endpoints; the dashboard and alerts work.

Covers: Prometheus (the real server, scraping every second) scrapes a live built-in trainer
(`python -m lrsweep_trainer`, torch on CPU) and a live operator `Telemetry` registry, both
`up`; it loads the chart's rules with every rule healthy; every PromQL query of the dashboard
and of the rules evaluates without error, as an instant and as a range query; the `sweep`
variable offers the live sweep; the validation-loss, scheduled-rate and step panels return
the live trial's data, and every operator panel returns data; LRSweepFailed fires for a
failed sweep, LRSweepNoProgress is pending for a running sweep without trials and silent
for the sweep whose trainer advances.

Self-contained on purpose. The `targets` fixture is the one seam: it starts the trainer and
the operator registry here. To check the operator running on the test cluster during a
quickstart sweep, override `targets` (same name, in a conftest next to the cluster tests)
to yield a `Targets` with the operator's metrics address and the trial pods' addresses; the
scrape configuration mirrors the chart's ServiceMonitor (honorLabels) and PodMonitor
(`namespace` target label), so every assertion stays as it is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server

from lrsweep.api import Phase
from lrsweep.runtime.local import free_port
from lrsweep.telemetry import Telemetry
from tests.packaging.series import (
    PHASES,
    dashboard_panels,
    grafana_to_promql,
    populate,
    rules,
)
from tests.packaging.tools import helm_template, only, tool

# One xdist worker runs the module, so that its Prometheus and trainer start once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("prometheus-live")]

NAMESPACE = "default"
SWEEP = "quickstart"
STALLED = "stalled"
DEADLINE = 90.0  # seconds to wait for Prometheus to have scraped and evaluated enough


@dataclass(frozen=True)
class Targets:
    """What Prometheus scrapes: one operator /metrics, the trial pods' /metrics."""

    operator: str  # host:port
    trials: tuple[str, ...]  # host:port of each live trial
    namespace: str  # the namespace of the sweeps (the PodMonitor's `namespace` label)
    sweep: str  # a sweep with live trials
    failed_sweeps: tuple[str, ...] = ()  # sweeps known to have Failed
    stalled_sweeps: tuple[str, ...] = ()  # Running sweeps with no trial advancing
    scored_sweep: str | None = None  # a sweep with a best score (default: `sweep`)


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(0.5)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError):
        return None


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first (the contract's polite stop), then SIGKILL if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """A live built-in trainer and a live operator registry, on loopback ports."""
    work = tmp_path_factory.mktemp("live")
    trainer_port = free_port()
    trainer_log = (work / "trainer.log").open("wb")
    # Long enough to stay live for the whole module; stopped below.
    trainer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lrsweep_trainer",
            "--task",
            "digits-mlp",
            "--steps",
            "1000000",
            "--eval-every",
            "20",
            "--threads",
            "1",
            "--metrics-port",
            str(trainer_port),
            "--metrics-host",
            "127.0.0.1",
        ],
        env={
            **os.environ,
            "LRSWEEP_SWEEP": SWEEP,
            "LRSWEEP_TRIAL": "t000",
            "LRSWEEP_TERMINATION_PATH": str(work / "summary.json"),
        },
        stdout=trainer_log,
        stderr=subprocess.STDOUT,
    )
    telemetry = Telemetry()
    populate(telemetry, NAMESPACE, SWEEP)
    telemetry.record_sweep(NAMESPACE, STALLED, Phase.RUNNING.value, PHASES)
    # As the operator saw them: a trial of SWEEP advanced just now, none of STALLED's for an hour.
    telemetry.last_progress.labels(NAMESPACE, SWEEP).set(time.time())
    telemetry.last_progress.labels(NAMESPACE, STALLED).set(time.time() - 3600)
    operator_port = free_port()
    # Telemetry.serve's own call, keeping the server handle so the test can shut it down.
    server, thread = start_http_server(operator_port, "127.0.0.1", telemetry.registry)
    try:
        trainer_metrics = f"http://127.0.0.1:{trainer_port}/metrics"
        wait_for(lambda: trainer.poll() is None and _get(trainer_metrics) is not None, "trainer")
        yield Targets(
            operator=f"127.0.0.1:{operator_port}",
            trials=(f"127.0.0.1:{trainer_port}",),
            namespace=NAMESPACE,
            sweep=SWEEP,
            failed_sweeps=(f"{SWEEP}-failed",),
            stalled_sweeps=(STALLED,),
        )
    finally:
        stop(trainer)
        trainer_log.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def scrape_config(targets: Targets, rules_file: Path) -> dict[str, Any]:
    """Prometheus configuration equivalent to the chart's ServiceMonitor and PodMonitor."""
    objects = helm_template(
        "--set",
        "metrics.serviceMonitor.enabled=true",
        api_versions=["monitoring.coreos.com/v1"],
    )
    (endpoint,) = only(objects, "ServiceMonitor")["spec"]["endpoints"]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": "lrsweep-operator",
                "honor_labels": endpoint["honorLabels"],
                "static_configs": [{"targets": [targets.operator]}],
            },
            {
                "job_name": "lrsweep-trials",
                "static_configs": [
                    {"targets": list(targets.trials), "labels": {"namespace": targets.namespace}}
                ],
            },
        ],
    }


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] != "scalar" else []
        return result

    def query_range(self, expr: str, seconds: int = 120) -> list[dict[str, Any]]:
        now = time.time()
        data = self.get(
            "/api/v1/query_range",
            query=expr,
            start=str(now - seconds),
            end=str(now),
            step="1",
        )
        result: list[dict[str, Any]] = data["result"]
        return result


@pytest.fixture(scope="module")
def prometheus(
    targets: Targets, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusAPI]:
    """A real Prometheus server, its rules being the chart's PrometheusRule."""
    work = tmp_path_factory.mktemp("prometheus")
    objects = helm_template(
        "--set", "metrics.prometheusRule.enabled=true", api_versions=["monitoring.coreos.com/v1"]
    )
    rules_file = work / "rules.yaml"
    rules_file.write_text(
        yaml.safe_dump({"groups": only(objects, "PrometheusRule")["spec"]["groups"]})
    )
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets, rules_file)))
    port = free_port()
    log_path = work / "prometheus.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    api = PrometheusAPI(base)
    try:
        wait_for(
            lambda: server.poll() is None and _get(f"{base}/-/ready") is not None,
            f"Prometheus to be ready (log: {log_path})",
        )
        yield api
    finally:
        stop(server)
        log.close()


@pytest.fixture(scope="module")
def scraped(prometheus: PrometheusAPI, targets: Targets) -> PrometheusAPI:
    """Prometheus once it holds a few samples of every target and has evaluated every rule."""

    def enough() -> bool:
        up = prometheus.query("up == 1")
        losses = prometheus.query_range(f'lrsweep_trial_val_loss{{sweep="{targets.sweep}"}}')
        groups = prometheus.get("/api/v1/rules")["groups"]
        evaluated = all(
            not r["lastEvaluation"].startswith("0001") for g in groups for r in g["rules"]
        )
        return (
            len(up) == 1 + len(targets.trials)
            and bool(losses)
            and len(losses[0]["values"]) >= 3
            and bool(groups)
            and evaluated
        )

    wait_for(enough, "every target up, 3 loss samples and one evaluation of every rule")
    return prometheus


def test_prometheus_scrapes_the_trainer_and_the_operator(
    scraped: PrometheusAPI, targets: Targets
) -> None:
    jobs = {r["metric"]["job"] for r in scraped.query("up == 1")}
    assert jobs == {"lrsweep-operator", "lrsweep-trials"}


def test_every_rule_loads_and_evaluates_healthily(scraped: PrometheusAPI) -> None:
    loaded = [r for g in scraped.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in loaded} == {r["alert"] for r in rules()}
    for rule in loaded:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_every_rule_expression_evaluates(scraped: PrometheusAPI) -> None:
    for rule in rules():
        scraped.query(rule["expr"])


def test_every_dashboard_query_evaluates_instant_and_range(
    scraped: PrometheusAPI, targets: Targets
) -> None:
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = grafana_to_promql(target["expr"], targets.namespace, targets.sweep)
            scraped.query(expr)
            scraped.query_range(expr)


def test_the_sweep_variable_offers_the_live_sweep(scraped: PrometheusAPI, targets: Targets) -> None:
    values = scraped.get("/api/v1/label/sweep/values", **{"match[]": "lrsweep_trial_step"})
    assert targets.sweep in values


@pytest.mark.parametrize(
    "title", ["Validation loss per trial", "Scheduled learning rate per trial", "Training step"]
)
def test_the_trial_panels_show_the_live_trials(
    scraped: PrometheusAPI, targets: Targets, title: str
) -> None:
    (panel,) = [p for p in dashboard_panels() if p["title"].startswith(title)]
    (target,) = panel["targets"]
    series = scraped.query_range(
        grafana_to_promql(target["expr"], targets.namespace, targets.sweep)
    )
    assert series, f"{title}: no data for sweep {targets.sweep}"
    for one in series:
        assert one["metric"]["trial"]
        assert one["metric"]["namespace"] == targets.namespace
        assert len(one["values"]) >= 2, "a curve over time, not a single point"


def test_every_operator_panel_returns_data(scraped: PrometheusAPI, targets: Targets) -> None:
    empty: list[str] = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            if "lrsweep_trial_" in target["expr"]:
                continue
            if not scraped.query_range(
                grafana_to_promql(target["expr"], targets.namespace, targets.sweep)
            ):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


def test_the_operator_series_keep_the_sweeps_namespace(
    scraped: PrometheusAPI, targets: Targets
) -> None:
    scored = targets.scored_sweep or targets.sweep
    series = scraped.query(f'lrsweep_sweep_best_score{{sweep="{scored}"}}')
    assert [s["metric"]["namespace"] for s in series] == [targets.namespace]


def _alerts(api: PrometheusAPI, name: str, state: str) -> set[str]:
    return {
        a["labels"]["sweep"]
        for a in api.get("/api/v1/alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == state
    }


def test_a_failed_sweep_fires_lrsweep_failed(scraped: PrometheusAPI, targets: Targets) -> None:
    assert _alerts(scraped, "LRSweepFailed", "firing") == set(targets.failed_sweeps)


def test_no_progress_is_pending_only_for_sweeps_whose_trials_do_not_advance(
    scraped: PrometheusAPI, targets: Targets
) -> None:
    pending = _alerts(scraped, "LRSweepNoProgress", "pending")
    assert targets.sweep not in pending
    assert set(targets.stalled_sweeps) <= pending
