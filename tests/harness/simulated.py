"""Simulated trainers: trial pods that run no process, so thousands fit on a small machine.

A container whose image maps to `SIMULATED` (the `lrsweep-sim-trainer` image does by default;
`--image lrsweep-trainer=harness:simulated-trainer` or `images={...: SIMULATED}` make any image
one) is run by the kubelet stand-in itself, on its event loop: it reads the LRSWEEP_*
environment as the built-in trainer does (`RunSettings`), serves the metrics contract on
`LRSWEEP_METRICS_HOST:LRSWEEP_METRICS_PORT` (the trainer's own gauges, rendered by
prometheus-client; `POST /continue?step=N` and `POST /discard`), pauses at rungs under the
rung gate, honours SIGTERM (stop at the next step, summary, exit 0) and SIGKILL (exit 137, no
summary), and leaves the trainer's own JSON summary (`render_summary`) as its termination
message. Nothing the operator reads tells it from `python -m lrsweep_trainer`.

The loss is a deterministic function of the rate, the step and two optional variables:
`LRSWEEP_SIM_OPTIMUM` (the best rate, default 0.1) and `LRSWEEP_SIM_STEP_SECONDS` (seconds per
training step, default 0.01). Rates far above the optimum diverge, rates below it learn
slowly. Range tests (`LRSWEEP_MODE=range-test`) are not simulated: such a container fails
with exit code 2 and says so in its summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lrsweep.contract import CONTINUE_PATH, DISCARD_PATH
from lrsweep.engine.rangetest import is_divergent
from lrsweep_trainer.metrics import MetricsExporter
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.summary import History, Status, SummaryInput, render_summary

# The entrypoint that selects a simulated trainer (an image mapped to it in the kubelet's
# images, or a container's own `command`).
SIMULATED = ["harness:simulated-trainer"]
SIMULATED_IMAGE = "lrsweep-sim-trainer"
OPTIMUM = "LRSWEEP_SIM_OPTIMUM"
STEP_SECONDS = "LRSWEEP_SIM_STEP_SECONDS"
DEFAULT_OPTIMUM = 0.1
DEFAULT_STEP_SECONDS = 0.01
INITIAL_LOSS = 2.3
EXIT_USAGE = 2
EXIT_KILLED = 137
# Never a real process id (Linux's PID_MAX_LIMIT is 2**22): signals to it reach nobody.
_pids = itertools.count(2**22 + 1)


def selected(argv: list[str]) -> bool:
    """Whether a container's command line is the simulated trainer's."""
    return argv[:1] == SIMULATED


def loss_at(learning_rate: float, step: int, max_steps: int, optimum: float) -> float:
    """The simulated training loss after `step` of `max_steps` steps at this rate.

    Below the optimum the loss falls more slowly (and ends higher); above it, it ends higher
    too, and more than 0.8 decades above it the run diverges: the loss grows tenfold over
    the run, and becomes NaN beyond 1.2 decades.
    """
    distance = math.log10(learning_rate / optimum)
    progress = step / max(max_steps, 1)
    if distance > 1.2 and step > 0:
        return math.nan
    if distance > 0.8:
        return INITIAL_LOSS * 10**progress
    speed = 4.0 * 10 ** min(distance, 0.0)
    floor = 0.05 + 0.3 * distance**2
    return floor + (INITIAL_LOSS - floor) * math.exp(-speed * progress)


class SimulatedTrainer:
    """One simulated container: what the kubelet stand-in holds as its process."""

    def __init__(self, env: Mapping[str, str], message_path: Path, log_path: Path) -> None:
        self.pid = next(_pids)
        self.returncode: int | None = None
        self._env = dict(env)
        self._message_path = message_path
        self._log_path = log_path
        self._terminated = False
        self._released = -1
        # Set at each SIGTERM and go-ahead: whoever waits looks again.
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._metrics: MetricsExporter | None = None

    @classmethod
    async def start(
        cls, env: Mapping[str, str], message_path: Path, log_path: Path
    ) -> SimulatedTrainer:
        trainer = cls(env, message_path, log_path)
        trainer._task = asyncio.get_running_loop().create_task(trainer._run())
        return trainer

    # The process interface the kubelet uses

    async def wait(self) -> int:
        try:
            await self._done.wait()
        except asyncio.CancelledError:  # the kubelet is stopping: the container goes too
            self.send_signal(signal.SIGKILL)
            raise
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        if sig == signal.SIGKILL:
            if self._task is not None:
                self._task.cancel()
            self._exit(EXIT_KILLED)
        else:
            self._terminated = True
            self._changed.set()

    # The trainer

    def _log(self, line: str) -> None:
        with self._log_path.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _exit(self, code: int) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.returncode = code
        self._done.set()

    async def _run(self) -> None:
        try:
            settings = RunSettings.from_env(self._env)
            if settings.mode != "train" or settings.max_steps is None:
                raise ValueError("the simulated trainer runs train mode with LRSWEEP_MAX_STEPS")
            optimum = float(self._env.get(OPTIMUM) or DEFAULT_OPTIMUM)
            step_seconds = float(self._env.get(STEP_SECONDS) or DEFAULT_STEP_SECONDS)
        except ValueError as error:
            trial = self._env.get("LRSWEEP_TRIAL", "")
            self._finish(
                SummaryInput(trial, "failed", f"bad arguments: {error}", 0, math.nan), EXIT_USAGE
            )
            return
        metrics = self._metrics = MetricsExporter(settings.sweep, settings.trial)
        if settings.metrics_port:
            try:
                self._server = await asyncio.start_server(
                    self._serve, settings.metrics_host, settings.metrics_port
                )
            except OSError as error:
                self._log(f"no metrics endpoint: {error}")
        history = History(protected=settings.rungs)
        budget = settings.max_steps
        step, reference = 0, None
        status: Status = "finished"
        reason = f"reached step {budget}"
        while True:
            loss = loss_at(settings.learning_rate, step, budget, optimum)
            values = {"train_loss": loss, "val_loss": loss * 1.05}
            history.record(step, values)
            metrics.set_step(step, settings.learning_rate)
            metrics.record_evaluation(step, values)
            reference = loss if reference is None else reference
            if not math.isfinite(loss) or is_divergent(loss, reference, settings.divergence_factor):
                status, reason = "diverged", f"training loss became {loss:.4g} at step {step}"
                break
            if step >= budget:
                break
            if self._gated(settings, step) and not await self._until(
                functools.partial(self._released_past, step), settings.gate_timeout
            ):
                self._log(f"no decision at rung {step} within {settings.gate_timeout:g}s")
            if self._terminated:
                reason = f"stopped by SIGTERM at step {step}"
                break
            following = min(budget, step + settings.eval_every - step % settings.eval_every)
            await self._until(lambda: False, (following - step) * step_seconds)
            if self._terminated:  # stopped between evaluations: at the next step
                step += 1
                metrics.set_step(step, settings.learning_rate)
                reason = f"stopped by SIGTERM at step {step}"
                break
            step = following
        summary = SummaryInput(
            trial=settings.trial,
            status=status,
            reason=reason,
            step=step,
            learning_rate=settings.learning_rate,
            points=history.points,
            rungs=settings.rungs,
        )
        self._finish(summary, 0)

    def _gated(self, settings: RunSettings, step: int) -> bool:
        return (
            settings.gate_timeout > 0
            and self._server is not None
            and step in settings.rungs
            and step < (settings.max_steps or 0)
            and settings.objective in ("", "train_loss", "val_loss")
        )

    def _released_past(self, step: int) -> bool:
        return self._released >= step

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` or SIGTERM (True), or `timeout` seconds (False)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (done() or self._terminated):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    def _finish(self, summary: SummaryInput, code: int) -> None:
        self._message_path.write_text(render_summary(summary), encoding="utf-8")
        if self._metrics is not None:
            self._metrics.set_finished(diverged=summary.status == "diverged")
        self._log(f"{summary.status}: {summary.reason}")
        self._exit(code)

    # The metrics endpoint

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            status, body, content_type = self._answer(method, target)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _answer(self, method: str, target: str) -> tuple[str, bytes, str]:
        url = urlsplit(target)
        if url.path not in (CONTINUE_PATH, DISCARD_PATH):
            assert self._metrics is not None
            return "200 OK", self._metrics.exposition(url.path), CONTENT_TYPE_LATEST
        if method != "POST":
            return "405 Method Not Allowed", f"POST {url.path}\n".encode(), "text/plain"
        if url.path == CONTINUE_PATH:
            try:
                step = int(parse_qs(url.query)["step"][0])
            except (KeyError, ValueError):
                return "400 Bad Request", b"step=N (an integer) is required\n", "text/plain"
            self._released = max(self._released, step)
            self._changed.set()
        return "204 No Content", b"", "text/plain"
