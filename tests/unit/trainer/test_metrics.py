"""The Prometheus endpoint (docs/contract.md, "Metrics").

Covers: a live session serves every contract series with sweep/trial labels, and the
evaluation history as one sample per point and metric, NaN included; the history keeps
the newest 500 points; finished/diverged flags at the end; port 0 serves nothing; each
exporter has a private registry, so two in one process do not clash.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from lrsweep import contract
from lrsweep.runtime.local import free_port
from lrsweep_trainer.metrics import MetricsExporter
from lrsweep_trainer.report import Session
from lrsweep_trainer.settings import RunSettings

SERIES = set(contract.BOUNDED_SERIES)


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def by_name(found: Iterable[Sample], name: str) -> list[Sample]:
    return [s for s in found if s.name == name]


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def live_session(summary_path: Path) -> Session:
    settings = RunSettings(
        learning_rate=0.1,
        max_steps=20,
        sweep="demo",
        trial="t001",
        metrics_port=free_port(),
        metrics_host="127.0.0.1",
        termination_path=str(summary_path),
    )
    return Session(settings, handle_sigterm=False)


def test_metrics_serves_the_contract_series_and_no_series_per_step(summary_path: Path) -> None:
    with live_session(summary_path) as session:
        assert session.metrics_port is not None
        session.log_step(1, 2.0, grad_norm=0.5)
        for step in (10, 20):
            session.log(step, train_loss=1.0 / step, val_loss=2.0 / step)
        found = samples(scrape(session.metrics_port))
    assert {s.name for s in found} >= SERIES
    assert not [s for s in found if "step" in s.labels], "one series per step in Prometheus"


def test_history_serves_the_contract_series_and_every_evaluation(summary_path: Path) -> None:
    with live_session(summary_path) as session:
        assert session.metrics_port == session.settings.metrics_port
        session.log_step(1, 2.0, grad_norm=0.5)
        session.log(10, train_loss=1.5, val_loss=1.6, val_accuracy=0.4)
        session.log(20, train_loss=1.2, val_loss=math.nan)
        found = samples(scrape(session.metrics_port, "/history"))
    assert {s.name for s in found} >= SERIES
    assert all(s.labels["sweep"] == "demo" and s.labels["trial"] == "t001" for s in found)
    history = {
        (s.labels["step"], s.labels["metric"]): s.value
        for s in by_name(found, "lrsweep_trial_eval")
    }
    assert history[("10", "train_loss")] == 1.5
    assert history[("10", "val_accuracy")] == 0.4
    assert history[("20", "train_loss")] == 1.2
    assert math.isnan(history[("20", "val_loss")])
    assert by_name(found, "lrsweep_trial_step")[0].value == 20
    assert by_name(found, "lrsweep_trial_grad_norm")[0].value == 0.5
    assert by_name(found, "lrsweep_trial_learning_rate")[0].value == 0.1


def test_history_keeps_the_newest_500_points() -> None:
    exporter = MetricsExporter("s", "t")
    for step in range(1, 601):
        exporter.record_evaluation(step, {"train_loss": 1.0 / step, "val_loss": 2.0 / step})
    history = by_name(samples(generate_latest(exporter.history).decode()), "lrsweep_trial_eval")
    steps = sorted({int(s.labels["step"]) for s in history})
    assert steps == list(range(101, 601))
    assert len(history) == 1000


def test_finish_raises_the_finished_and_diverged_flags(summary_path: Path) -> None:
    session = Session(
        RunSettings(learning_rate=0.1, termination_path=str(summary_path)), handle_sigterm=False
    )
    session.log_step(1, math.inf)
    session.finish()
    found = samples(generate_latest(session._metrics.registry).decode())
    assert by_name(found, "lrsweep_trial_finished")[0].value == 1
    assert by_name(found, "lrsweep_trial_diverged")[0].value == 1


def test_port_zero_serves_nothing(summary_path: Path) -> None:
    settings = RunSettings(learning_rate=0.1, metrics_port=0, termination_path=str(summary_path))
    with Session(settings, handle_sigterm=False) as session:
        assert session.metrics_port is None


def test_exporters_keep_private_registries() -> None:
    first, second = MetricsExporter("s", "t"), MetricsExporter("s", "t")
    first.set_step(5)
    second.set_step(7)
    steps = [
        by_name(samples(generate_latest(e.registry).decode()), "lrsweep_trial_step")[0].value
        for e in (first, second)
    ]
    assert steps == [5, 7]
