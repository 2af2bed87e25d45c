"""The LRSweep Grafana dashboard, as code (grafana-foundation-sdk).

    .venv/bin/python charts/lrsweep/dashboards/generate.py    # rewrites lrsweep.json

The chart ships the JSON this writes (a ConfigMap for Grafana's dashboard sidecar); a test
regenerates it and fails when the committed file is stale. Every query is PromQL against the
operator's series (ServiceMonitor) and the trainers' series (PodMonitor on trial pods).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

Panel = stat.Panel | bargauge.Panel | timeseries.Panel
OUT = Path(__file__).with_name("lrsweep.json")
UID = "lrsweep-overview"
# Every panel queries the Prometheus chosen in the `datasource` variable.
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")


def query(expr: str, legend: str, *, ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return q.instant().format(PromQueryFormat.TABLE) if instant else q.range()


def legend_table() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.RIGHT)
        .show_legend(True)
    )


def log_scale() -> common.ScaleDistributionConfig:
    return common.ScaleDistributionConfig().type(common_models.ScaleDistribution.LOG).log(10)


def sweeps_by_phase() -> stat.Panel:
    return (
        stat.Panel()
        .title("Sweeps by phase")
        .description("LRSweeps by the phase the operator last reconciled them in.")
        .datasource(DATASOURCE)
        .with_target(query("sum by (phase) (lrsweep_sweeps)", "{{phase}}"))
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .height(6)
        .span(8)
    )


def best_score_per_sweep() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Best score per sweep")
        .description("Objective of the best trial so far (lrsweep_sweep_best_score).")
        .datasource(DATASOURCE)
        .with_target(query("lrsweep_sweep_best_score", "{{namespace}}/{{sweep}}"))
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .height(6)
        .span(8)
    )


def best_rate_per_sweep() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Best learning rate per sweep")
        .description("The rate of the best trial so far (lrsweep_sweep_best_learning_rate).")
        .datasource(DATASOURCE)
        .with_target(query("lrsweep_sweep_best_learning_rate", "{{namespace}}/{{sweep}}"))
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .decimals(5)
        .height(6)
        .span(8)
    )


def validation_loss() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Validation loss per trial: $sweep")
        .description("Each trial's validation loss at its last evaluation (log scale).")
        .datasource(DATASOURCE)
        .with_target(
            query('lrsweep_trial_val_loss{namespace="$namespace", sweep="$sweep"}', "{{trial}}")
        )
        .scale_distribution(log_scale())
        .legend(legend_table())
        .height(10)
        .span(12)
    )


def learning_rate() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Scheduled learning rate per trial: $sweep")
        .description("The rate each trial's schedule gives at its current step (log scale).")
        .datasource(DATASOURCE)
        .with_target(
            query(
                'lrsweep_trial_learning_rate{namespace="$namespace", sweep="$sweep"}', "{{trial}}"
            )
        )
        .scale_distribution(log_scale())
        .legend(legend_table())
        .height(10)
        .span(12)
    )


def trial_steps() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Training step per trial: $sweep")
        .description("Progress of each trial; a flat line is a stalled or stopped trial.")
        .datasource(DATASOURCE)
        .with_target(
            query('lrsweep_trial_step{namespace="$namespace", sweep="$sweep"}', "{{trial}}")
        )
        .legend(legend_table())
        .height(8)
        .span(12)
    )


def trials_by_verdict() -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title("Trials ended, by phase and verdict")
        .description("Trials that reached a final phase in the dashboard's time range.")
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (phase, verdict) (increase(lrsweep_trials_ended_total[$__range]))",
                "{{phase}} / {{verdict}}",
                instant=True,
            )
        )
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .decimals(0)
        .height(8)
        .span(12)
    )


def reconcile_latency() -> timeseries.Panel:
    bucket = "rate(lrsweep_reconcile_duration_seconds_bucket[$__rate_interval])"
    waited = "rate(lrsweep_reconcile_wait_seconds_bucket[$__rate_interval])"
    return (
        timeseries.Panel()
        .title("Operator reconcile latency")
        .description(
            "Time of one reconcile of one sweep (median, 99th percentile), and how long a "
            "sweep due waited for one to start (99th percentile: long waits mean more sweeps "
            "than reconciles at once)."
        )
        .datasource(DATASOURCE)
        .with_target(query(f"histogram_quantile(0.5, sum by (le) ({bucket}))", "p50"))
        .with_target(query(f"histogram_quantile(0.99, sum by (le) ({bucket}))", "p99", ref="B"))
        .with_target(
            query(f"histogram_quantile(0.99, sum by (le) ({waited}))", "waited p99", ref="C")
        )
        .unit("s")
        .height(8)
        .span(12)
    )


def api_errors() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Kubernetes API errors and failed scrapes")
        .description("Failed API calls of the operator per second, by operation and status.")
        .datasource(DATASOURCE)
        .with_target(
            query(
                "sum by (operation, status) "
                "(rate(lrsweep_kubernetes_api_errors_total[$__rate_interval]))",
                "{{operation}} {{status}}",
            )
        )
        .with_target(
            query(
                "sum by (namespace) (rate(lrsweep_scrape_failures_total[$__rate_interval]))",
                "scrape failures {{namespace}}",
                ref="B",
            )
        )
        .unit("reqps")
        .height(8)
        .span(12)
    )


def build() -> dashboard.Dashboard:
    datasource = dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .description("The namespace of the sweep: sweeps of one name in two namespaces differ.")
        .datasource(DATASOURCE)
        .query("label_values(lrsweep_trial_step, namespace)")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )
    sweep = (
        dashboard.QueryVariable("sweep")
        .label("Sweep")
        .description("The LRSweep whose trials the loss, rate and step panels show.")
        .datasource(DATASOURCE)
        .query('label_values(lrsweep_trial_step{namespace="$namespace"}, sweep)')
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )
    board = (
        dashboard.Dashboard("LRSweep")
        .uid(UID)
        .description("Learning-rate sweeps: phases, best rates, trial curves, operator health.")
        .tags(["lrsweep", "machine-learning"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource)
        .with_variable(namespace)
        .with_variable(sweep)
    )
    rows: list[tuple[str, list[Panel]]] = [
        ("Sweeps", [sweeps_by_phase(), best_score_per_sweep(), best_rate_per_sweep()]),
        (
            "Trials of $namespace/$sweep",
            [validation_loss(), learning_rate(), trial_steps(), trials_by_verdict()],
        ),
        ("Operator", [reconcile_latency(), api_errors()]),
    ]
    # Stable panel ids: Grafana links and the panels' state refer to them.
    next_id = 1
    for title, panels in rows:
        board = board.with_row(dashboard.Row(title).id(next_id))
        next_id += 1
        for panel in panels:
            board = board.with_panel(panel.id(next_id))
            next_id += 1
    return board


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
