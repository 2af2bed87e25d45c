"""The Prometheus series LRSweep exports, and the PromQL that reads them.

The operator's series come from a real `Telemetry` registry populated through its own
methods; the trainer's from the contract (docs/contract.md). The rules and the dashboard
may only name series that exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lrsweep.api import Phase
from lrsweep.telemetry import Telemetry
from tests.packaging.tools import CHART, ROOT

RULES_FILE = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD_FILE = CHART / "dashboards" / "lrsweep.json"
PHASES = [p.value for p in Phase]


def populate(telemetry: Telemetry, namespace: str, sweep: str) -> None:
    """Give every operator series a sample, as a reconcile of a running sweep would."""
    telemetry.record_sweep(namespace, sweep, Phase.RUNNING.value, PHASES)
    telemetry.record_sweep(namespace, f"{sweep}-failed", Phase.FAILED.value, PHASES)
    telemetry.best_score.labels(namespace, sweep).set(0.231)
    telemetry.best_rate.labels(namespace, sweep).set(0.0316)
    telemetry.launches.labels(namespace).inc(3)
    telemetry.trials.labels(namespace, "Stopped", "too-slow").inc()
    telemetry.trials.labels(namespace, "Diverged", "diverged").inc()
    telemetry.reconcile_seconds.observe(0.03)
    telemetry.reconcile_seconds.observe(0.2)
    telemetry.api_errors.labels("create_pod", "500").inc()
    telemetry.scrape_failures.labels(namespace).inc()
    telemetry.post_failures.labels(namespace).inc()
    telemetry.last_progress.labels(namespace, sweep).set(1.7e9)


def operator_series() -> set[str]:
    """Every sample name the operator's /metrics serves."""
    telemetry = Telemetry()
    populate(telemetry, "ml", "s")
    text = generate_latest(telemetry.registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def trainer_series() -> set[str]:
    """The trainer's series, as the contract lists them."""
    contract = (ROOT / "docs" / "contract.md").read_text()
    return set(re.findall(r"`(lrsweep_trial_\w+)`", contract))


def series_in(expr: str) -> set[str]:
    """Names of the series a PromQL expression reads."""
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    return set(re.findall(r"\b(lrsweep_\w+)\b", without_ranges))


def rules() -> list[dict[str, Any]]:
    """The alerting rules of the plain rules file."""
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return board


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Panels with queries (rows excluded)."""
    for panel in dashboard()["panels"]:
        if panel.get("targets"):
            yield panel


def grafana_to_promql(expr: str, namespace: str, sweep: str) -> str:
    """A dashboard query as Grafana would send it, for one value of the `namespace` and
    `sweep` variables."""
    for variable, value in (
        ("$namespace", namespace),
        ("$sweep", sweep),
        ("$__rate_interval", "1m"),
        ("$__range", "5m"),
    ):
        expr = expr.replace(variable, value)
    return expr
