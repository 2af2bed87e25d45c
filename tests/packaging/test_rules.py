"""LRSweep's Prometheus alerts, checked by promtool.

Covers: the chart's PrometheusRule carries exactly the plain rules file; `promtool check
rules` accepts its spec.groups; `promtool test rules` unit tests (sweep failed, sweep without
progress, trial failure rate) pass; the required alerts exist with a severity and a summary;
every series a rule reads is one the operator or the trainer exports.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.packaging.series import (
    RULES_FILE,
    operator_series,
    rules,
    series_in,
    trainer_series,
)
from tests.packaging.tools import helm_template, only, run, tool

UNIT_TESTS = Path(__file__).with_name("prometheus_rules_test.yaml")


def _rendered_groups() -> object:
    objects = helm_template(
        "--set", "metrics.prometheusRule.enabled=true", api_versions=["monitoring.coreos.com/v1"]
    )
    return only(objects, "PrometheusRule")["spec"]["groups"]


def test_the_prometheus_rule_carries_the_plain_rules_file() -> None:
    assert _rendered_groups() == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_promtool_accepts_the_prometheus_rules_groups(tmp_path: Path) -> None:
    extracted = tmp_path / "rules.yaml"
    extracted.write_text(yaml.safe_dump({"groups": _rendered_groups()}))
    out = run([tool("promtool"), "check", "rules", str(extracted)])
    assert "SUCCESS: 4 rules found" in out


def test_promtool_unit_tests_of_the_alerts_pass(tmp_path: Path) -> None:
    shutil.copy(RULES_FILE, tmp_path / "rules.yaml")
    shutil.copy(UNIT_TESTS, tmp_path / "tests.yaml")
    out = run([tool("promtool"), "test", "rules", "tests.yaml"], cwd=tmp_path)
    assert "SUCCESS" in out


def test_the_required_alerts_exist_with_severity_and_summary() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    assert {"LRSweepFailed", "LRSweepNoProgress", "LRSweepTrialFailureRateHigh"} <= set(alerts)
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_every_series_a_rule_reads_is_exported() -> None:
    exported = operator_series() | trainer_series()
    for rule in rules():
        assert series_in(rule["expr"]) <= exported, rule["alert"]
