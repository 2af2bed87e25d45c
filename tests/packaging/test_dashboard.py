"""The Grafana dashboard, built as code with grafana-foundation-sdk.

Covers: the committed JSON equals what dashboards/generate.py builds; the `sweep` template
variable reads sweep names from trial series, and the datasource is a variable; the required
panels exist (sweeps by phase, validation loss and scheduled rate per trial of `$sweep`,
best score per sweep, trials by verdict, reconcile latency as histogram_quantile, API
errors); panel ids and query refIds are unique; every series a panel reads is exported.
"""

from __future__ import annotations

import importlib.util
from collections import Counter

from tests.packaging.series import (
    DASHBOARD_FILE,
    dashboard,
    dashboard_panels,
    operator_series,
    series_in,
    trainer_series,
)
from tests.packaging.tools import CHART

GENERATOR = CHART / "dashboards" / "generate.py"


def _panel_exprs() -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard_panels()}


def _expr_of(title_start: str) -> str:
    (expr,) = [e for t, es in _panel_exprs().items() if t.startswith(title_start) for e in es]
    return expr


def test_the_committed_dashboard_is_what_the_generator_builds() -> None:
    spec = importlib.util.spec_from_file_location("lrsweep_dashboard", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD_FILE.read_text() == module.render(), (
        "lrsweep.json is stale: run `.venv/bin/python charts/lrsweep/dashboards/generate.py`"
    )


def test_the_sweep_variable_lists_the_chosen_namespaces_sweeps_with_trial_series() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["namespace"]["query"] == "label_values(lrsweep_trial_step, namespace)"
    assert variables["sweep"]["type"] == "query"
    assert variables["sweep"]["query"] == (
        'label_values(lrsweep_trial_step{namespace="$namespace"}, sweep)'
    )
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_sweeps_by_phase() -> None:
    assert _expr_of("Sweeps by phase") == "sum by (phase) (lrsweep_sweeps)"


def test_validation_loss_and_scheduled_rate_per_trial_of_the_chosen_sweep() -> None:
    loss = _expr_of("Validation loss per trial")
    assert loss == 'lrsweep_trial_val_loss{namespace="$namespace", sweep="$sweep"}'
    rate = _expr_of("Scheduled learning rate per trial")
    assert rate == 'lrsweep_trial_learning_rate{namespace="$namespace", sweep="$sweep"}'


def test_best_score_per_sweep_and_trials_by_verdict() -> None:
    assert _expr_of("Best score per sweep") == "lrsweep_sweep_best_score"
    assert "by (phase, verdict)" in _expr_of("Trials ended, by phase and verdict")


def test_reconcile_latency_and_api_errors() -> None:
    latency = _panel_exprs()["Operator reconcile latency"]
    assert all(e.startswith("histogram_quantile(") for e in latency)
    errors = _panel_exprs()["Kubernetes API errors and failed scrapes"]
    assert any("lrsweep_kubernetes_api_errors_total" in e for e in errors)


def test_panel_ids_and_query_ref_ids_are_unique() -> None:
    ids = Counter(p["id"] for p in dashboard()["panels"])
    assert max(ids.values()) == 1
    for panel in dashboard_panels():
        refs = [t["refId"] for t in panel["targets"]]
        assert all(refs)
        assert len(set(refs)) == len(refs), panel["title"]


def test_every_series_a_panel_reads_is_exported() -> None:
    exported = operator_series() | trainer_series()
    for title, exprs in _panel_exprs().items():
        for expr in exprs:
            assert series_in(expr) <= exported, title
