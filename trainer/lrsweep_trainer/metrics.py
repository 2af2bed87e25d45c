"""The trial's Prometheus endpoint (docs/contract.md, "Metrics").

Each exporter owns private registries, so several sessions in one process (tests, notebooks)
never share or clash over series: `registry`, bounded series served at /metrics (what
Prometheus keeps), and `history`, the evaluations by step, served with them at /history
(what the sweep reads).
"""

from __future__ import annotations

import socketserver
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
    make_wsgi_app,
)

from lrsweep.contract import (
    CONTINUE_PATH,
    DISCARD_PATH,
    DIVERGED_SERIES,
    FINISHED_SERIES,
    GRAD_NORM_SERIES,
    HISTORY_PATH,
    HISTORY_POINTS,
    HISTORY_SERIES,
    METRICS_PATH,
    RATE_SERIES,
    RESUMED_SERIES,
    SERIES_LABELS,
    STEP_SERIES,
    TRAIN_LOSS_SERIES,
    VAL_LOSS_SERIES,
)

_LABELS = SERIES_LABELS

StartResponse = Callable[..., Any]


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are routine: keep them out of the trial's log."""


class MetricsExporter:
    """Gauges of one trial, optionally served over HTTP."""

    def __init__(self, sweep: str, trial: str, history_points: int = HISTORY_POINTS) -> None:
        self.registry = CollectorRegistry()
        self.history = CollectorRegistry()
        self._labels = (sweep, trial)
        self._history_points = history_points
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        # Evaluation steps currently exported, oldest first, with the metric names at each.
        self._exported: OrderedDict[int, set[str]] = OrderedDict()
        self._lock = threading.Lock()

        def gauge(
            name: str,
            documentation: str,
            extra: tuple[str, ...] = (),
            registry: CollectorRegistry | None = None,
        ) -> Gauge:
            return Gauge(
                name, documentation, [*_LABELS, *extra], registry=registry or self.registry
            )

        self._step = gauge(STEP_SERIES, "Last completed training step.")
        self._train_loss = gauge(TRAIN_LOSS_SERIES, "Training loss at the last evaluation.")
        self._val_loss = gauge(VAL_LOSS_SERIES, "Validation loss at the last evaluation.")
        self._learning_rate = gauge(RATE_SERIES, "The rate the schedule gives at the current step.")
        self._grad_norm = gauge(GRAD_NORM_SERIES, "Gradient norm at the current step.")
        self._finished = gauge(FINISHED_SERIES, "1 once the run has ended (any status).")
        self._diverged = gauge(DIVERGED_SERIES, "1 if the run ended diverged.")
        self._resumed_from = gauge(
            RESUMED_SERIES,
            "Step of the checkpoint this attempt went on from (0: from the start).",
        )
        self._eval = gauge(
            HISTORY_SERIES,
            f"Evaluation history: one sample per evaluation point and metric, "
            f"the newest {history_points} points.",
            ("metric", "step"),
            registry=self.history,
        )
        self._finished.labels(*self._labels).set(0)
        self._diverged.labels(*self._labels).set(0)
        self._resumed_from.labels(*self._labels).set(0)

    @property
    def port(self) -> int | None:
        """The port being served, or None when there is no endpoint."""
        return None if self._server is None else self._server.server_port

    def serve(
        self,
        port: int,
        host: str,
        on_continue: Callable[[int], None] | None = None,
        on_discard: Callable[[], None] | None = None,
    ) -> None:
        """Serve on host:port (port 0 from the contract means: don't): `GET /metrics` the
        bounded series, `GET /history` those and the evaluations.

        `POST /continue?step=N` is the sweep's go-ahead past the rung at step N
        (docs/contract.md, "Rung gate"); it calls `on_continue(N)`. `POST /discard` says the
        sweep has decided the trial (docs/contract.md, "Checkpoints"); it calls
        `on_discard()`.
        """
        if port == 0 or self._server is not None:
            return
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO")
            if path == HISTORY_PATH:
                start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
                return [self.exposition(path)]
            if path not in (CONTINUE_PATH, DISCARD_PATH):
                # prometheus_client leaves its WSGI app untyped.
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            if environ.get("REQUEST_METHOD") != "POST":
                start_response("405 Method Not Allowed", [("Allow", "POST")])
                return [f"POST {path}\n".encode()]
            if path == DISCARD_PATH:
                if on_discard is not None:
                    on_discard()
                start_response("204 No Content", [])
                return []
            try:
                step = int(parse_qs(environ.get("QUERY_STRING", ""))["step"][0])
            except (KeyError, ValueError):
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"step=N (an integer) is required\n"]
            if on_continue is not None:
                on_continue(step)
            start_response("204 No Content", [])
            return []

        self._server = make_server(host, port, app, _Server, _QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def exposition(self, path: str = METRICS_PATH) -> bytes:
        """The Prometheus text served at `path`: the bounded series, and at HISTORY_PATH the
        evaluations too."""
        bounded = generate_latest(self.registry)
        return bounded + generate_latest(self.history) if path == HISTORY_PATH else bounded

    def close(self) -> None:
        """Stop serving; the gauges keep their values."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def set_step(
        self, step: int, learning_rate: float | None = None, grad_norm: float | None = None
    ) -> None:
        self._step.labels(*self._labels).set(step)
        if learning_rate is not None:
            self._learning_rate.labels(*self._labels).set(learning_rate)
        if grad_norm is not None:
            self._grad_norm.labels(*self._labels).set(grad_norm)

    def record_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Export one evaluation point (merged with earlier metrics at the same step)."""
        if "train_loss" in metrics:
            self._train_loss.labels(*self._labels).set(metrics["train_loss"])
        if "val_loss" in metrics:
            self._val_loss.labels(*self._labels).set(metrics["val_loss"])
        with self._lock:
            names = self._exported.setdefault(step, set())
            for name, value in metrics.items():
                self._eval.labels(*self._labels, name, str(step)).set(value)
                names.add(name)
            while len(self._exported) > self._history_points:
                # Evict the oldest step, not the smallest: steps arrive in order anyway.
                old_step, old_names = self._exported.popitem(last=False)
                for name in old_names:
                    self._eval.remove(*self._labels, name, str(old_step))

    def set_resumed_from(self, step: int) -> None:
        self._resumed_from.labels(*self._labels).set(step)

    def set_finished(self, diverged: bool) -> None:
        self._diverged.labels(*self._labels).set(1 if diverged else 0)
        self._finished.labels(*self._labels).set(1)
