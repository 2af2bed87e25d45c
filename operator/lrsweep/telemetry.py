"""The operator's own Prometheus metrics.

One `Telemetry` per operator process, on its own registry: tests create their own and never
share module-global state.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sweeps = Gauge(
            "lrsweep_sweeps",
            "LRSweeps by phase, as last reconciled",
            ["namespace", "sweep", "phase"],
            registry=self.registry,
        )
        self.best_score = Gauge(
            "lrsweep_sweep_best_score",
            "Objective of the best rate so far",
            ["namespace", "sweep"],
            registry=self.registry,
        )
        self.best_rate = Gauge(
            "lrsweep_sweep_best_learning_rate",
            "Best learning rate so far",
            ["namespace", "sweep"],
            registry=self.registry,
        )
        self.trials = Counter(
            "lrsweep_trials_ended",
            "Trials that reached a final phase, by phase and verdict",
            ["namespace", "phase", "verdict"],
            registry=self.registry,
        )
        self.launches = Counter(
            "lrsweep_trial_launches",
            "Trial attempts launched",
            ["namespace"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "lrsweep_reconcile_duration_seconds",
            "Time of one reconcile of one sweep",
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.reconcile_wait_seconds = Histogram(
            "lrsweep_reconcile_wait_seconds",
            "Time from a sweep being due (its interval over, or a trial pod of it ended) to "
            "its reconcile starting: long waits mean more sweeps than reconciles at once",
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.api_errors = Counter(
            "lrsweep_kubernetes_api_errors",
            "Failed Kubernetes API calls, by operation and HTTP status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.scrape_failures = Counter(
            "lrsweep_scrape_failures",
            "Failed scrapes of trial metrics endpoints",
            ["namespace"],
            registry=self.registry,
        )
        self.post_failures = Counter(
            "lrsweep_trainer_post_failures",
            "POSTs to trainers (the go-ahead past a rung, discarding a checkpoint) unanswered",
            ["namespace"],
            registry=self.registry,
        )
        self.last_progress = Gauge(
            "lrsweep_sweep_last_progress_timestamp_seconds",
            "When a trial of the sweep last advanced a step, or launched (Unix time)",
            ["namespace", "sweep"],
            registry=self.registry,
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # a pod's metrics port
        if port:
            start_http_server(port, addr=addr, registry=self.registry)

    def record_sweep(self, namespace: str, sweep: str, phase: str, phases: list[str]) -> None:
        for p in phases:
            self.sweeps.labels(namespace, sweep, p).set(1.0 if p == phase else 0.0)

    def forget_sweep(self, namespace: str, sweep: str, phases: list[str]) -> None:
        """Drop a deleted sweep's series, or its alerts (failed, no progress) fire on."""
        for labels in [(namespace, sweep, p) for p in phases]:
            with contextlib.suppress(KeyError):  # never recorded in this process
                self.sweeps.remove(*labels)
        for gauge in (self.best_score, self.best_rate, self.last_progress):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, sweep)
