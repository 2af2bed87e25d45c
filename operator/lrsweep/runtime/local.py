"""Trials as local processes: the embedded default behind `lrsweep run`.

Each attempt runs the pod template's first container command (or, with none, the LRSweep
trainer, which is the trainer image's entrypoint) with the environment contract, its own
metrics port and its own summary file. The sweep loop scrapes running attempts, reads the
summary of ended ones, and turns both into engine Observations.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from lrsweep.api import LRSweep, LRSweepStatus, SpecError
from lrsweep.contract import CONTINUE_PATH, HISTORY_PATH
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.sweep import (
    Decision,
    Launch,
    Promote,
    Sweep,
    decide,
    range_result_from_status,
    update,
)
from lrsweep.engine.trials import (
    Observation,
    TrialRecord,
    interrupted,
    records_from_status,
)
from lrsweep.runtime.env import contract_env, expand
from lrsweep.runtime.jsonsafe import json_safe
from lrsweep.runtime.metrics import (
    MetricsError,
    Reading,
    exit_observation,
    failed_attempt,
    parse_metrics,
    parse_summary,
    running_observation,
    silent_reason,
    stalled_reason,
)

# Without a `command`, a container runs its image's entrypoint; the trainer image's is this.
TRAINER_ENTRYPOINT = (sys.executable, "-m", "lrsweep_trainer")
SCRAPE_TIMEOUT = 2.0
# In a sweep's directory while it runs: held locked, so a second sweep there is refused.
LOCK_FILE = ".lrsweep.lock"
# Also in it: the sweep's status, rewritten whenever it changes, and the document it belongs
# to; together they let `lrsweep run --resume` go on after an interruption or a crash.
RESULT_FILE = "result.json"
REPORT_FILE = "report.png"
TRIALS_DIR = "trials"  # every attempt's log and summary (`attempt_files`)
# Each trial's latest state while the sweep runs, which a relaunched attempt (a retry, or
# `lrsweep run --resume`) goes on from; deleted once the sweep is over.
CHECKPOINTS_DIR = "checkpoints"
SWEEP_FILE = "sweep.json"
STOP_GRACE = 5.0
# How long a trial paused at a rung waits for a decision before going on by itself.
GATE_TIMEOUT = 60.0
# Seconds a trial may run without serving readable metrics before its attempt fails: the
# operator's default start grace (LRSWEEP_START_GRACE_SECONDS), the same rule.
SILENCE = 300.0
# Seconds a running trial's step may stand still (pauses at rungs included) before its
# attempt fails as hung: the operator's default (LRSWEEP_PROGRESS_DEADLINE_SECONDS).
PROGRESS_DEADLINE = 1800.0
LOG_TAIL = 300


def attempt_files(workdir: Path, trial: str, attempt: int) -> Path:
    """The common stem of one attempt's files: `<stem>.log` and `<stem>.summary.json`."""
    return workdir / TRIALS_DIR / f"{trial}-a{attempt}"


def checkpoint_dir(workdir: Path, trial: str) -> Path:
    """Where a trial keeps its state, for every attempt (LRSWEEP_CHECKPOINT_DIR)."""
    return (workdir / CHECKPOINTS_DIR / trial).absolute()


def discard_checkpoints(workdir: Path) -> None:
    """Delete every trial's checkpoint: the sweep is over, or starts afresh."""
    shutil.rmtree(workdir / CHECKPOINTS_DIR, ignore_errors=True)


# Linux's range of ports for the local end of outgoing connections.
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# How far below that range free_port looks.
BELOW_EPHEMERAL = 8192


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a process to listen on shortly after.

    A port the kernel picks (binding port 0) comes from its ephemeral range, where this
    machine's outgoing connections also take their local ports: one of them can take it
    before the process binds it. So, where the kernel says what that range is, the port
    comes from just below it; the kernel's pick is the fallback."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    candidates = (
        random.sample(range(max(1024, low - BELOW_EPHEMERAL), low), 32) if low > 2048 else []
    )
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = s.getsockname()[1]
            return found
    raise OSError("no free TCP port on 127.0.0.1")


def _field_ref(path: str, pod_name: str) -> str:
    known = {
        "metadata.name": pod_name,
        "metadata.namespace": "default",
        "status.podIP": "127.0.0.1",
        "spec.nodeName": "localhost",
    }
    if path not in known:
        raise SpecError(
            f"trial.template: env fieldRef {path!r} is not available to local trials; "
            f"use one of {', '.join(sorted(known))}"
        )
    return known[path]


def build_process(
    template: Mapping[str, Any], contract: Mapping[str, str], pod_name: str
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment a pod template's first container gets, as a local process.

    Contract variables come first, so the container's own env can refer to them with
    $(VAR); command and args are then expanded against the whole environment.
    """
    container = template["spec"]["containers"][0]
    if container.get("envFrom"):
        raise SpecError(
            "trial.template.spec.containers[0].envFrom: local trials cannot read ConfigMaps or "
            "Secrets; give the variables in env with a value"
        )
    env: dict[str, str] = dict(contract)
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
        elif "fieldRef" in (item.get("valueFrom") or {}):
            env[name] = _field_ref(item["valueFrom"]["fieldRef"]["fieldPath"], pod_name)
        else:
            raise SpecError(
                f"trial.template: env {name!r} uses a valueFrom source local trials cannot "
                "resolve; give it a value"
            )
    command = [str(c) for c in container.get("command") or TRAINER_ENTRYPOINT]
    args = [str(a) for a in container.get("args") or []]
    argv = [expand(part, env) for part in [*command, *args]]
    if "/" not in argv[0] and shutil.which(argv[0]) is None:
        argv[0] = beside_python(argv[0]) or argv[0]
    return argv, env


def beside_python(program: str) -> str | None:
    """`program` among the scripts of the environment running LRSweep (torchrun, say): where
    a command not on PATH is looked for next, as an image has its environment on PATH."""
    return shutil.which(program, path=str(Path(sys.executable).parent))


# The fields of a Kubernetes container: kubernetes.client.V1Container's, written out because
# importing the client costs seconds (a test keeps the two in step).
CONTAINER_FIELDS = frozenset(
    {
        "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle",
        "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources",
        "restartPolicy", "restartPolicyRules", "securityContext", "startupProbe", "stdin",
        "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty",
        "volumeDevices", "volumeMounts", "workingDir",
    }
)  # fmt: skip


def check_container(template: Mapping[str, Any]) -> None:
    """Refuse a misspelt key in the trainer's container: a local run reads only some of its
    fields, so `comand:` would otherwise run the LRSweep trainer instead of the script."""
    container = template["spec"]["containers"][0]
    for key in sorted(k for k in container if k not in CONTAINER_FIELDS):
        close = difflib.get_close_matches(key, CONTAINER_FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(
            f"trial.template.spec.containers[0].{key}: not a field of a Kubernetes "
            f"container{hint}; remove it or check its spelling"
        )


def working_dir(template: Mapping[str, Any]) -> str | None:
    """Where a trial process runs: the container's workingDir, else the current directory."""
    wd = template["spec"]["containers"][0].get("workingDir")
    return str(wd) if wd else None


def check_working_dir(template: Mapping[str, Any]) -> None:
    """Fail before the sweep starts when the container's workingDir is not a directory here."""
    wd = working_dir(template)
    if wd is not None and not Path(wd).is_dir():
        raise SpecError(
            f"trial.template.spec.containers[0].workingDir: {wd!r} is not a directory on this "
            "machine; local trials run where the container would: create it, or remove "
            "workingDir to run trials in the current directory"
        )


def check_command(template: Mapping[str, Any]) -> None:
    """Fail before the sweep starts when the trial's program does not exist here."""
    command = template["spec"]["containers"][0].get("command")
    if not command:
        return
    program = str(command[0])
    wd = working_dir(template)
    if wd is not None and "/" in program and not Path(program).is_absolute():
        program = str(Path(wd) / program)  # a relative path runs from the workingDir
    if shutil.which(program) is None and ("/" in program or beside_python(program) is None):
        raise SpecError(
            f"trial.template.spec.containers[0].command: {command[0]!r} was not found on "
            "this machine; give a program on PATH (or omit command to run the LRSweep trainer)"
        )


def check_runnable(sweep: LRSweep) -> None:
    """Refuse, before any trial starts, a trial template that cannot run on this machine: a
    misspelt container field, a missing workingDir or program, variables from Secrets or
    ConfigMaps (`build_process`, tried on the sweep's first trial). SpecError says which."""
    template = sweep.spec.trial.template
    check_container(template)
    check_working_dir(template)
    check_command(template)
    first = Launch("t000", 1, 0.1, 0, "train", 1, 1, ())
    build_process(template, contract_env(first, sweep=sweep.metadata.name, metrics_port=0), "x")


@dataclass
class _Attempt:
    launch: Launch
    process: subprocess.Popen[bytes]
    summary_path: Path
    log_path: Path
    log: IO[bytes]
    url: str
    stop_at: float | None = None  # monotonic time SIGTERM was sent
    decided: bool = False  # stopped by the sweep: no attempt will need its checkpoint
    promoted: int = -1  # the highest rung it has been let past
    reported: bool = False
    last_error: str = ""
    seen: list[Reading] = field(default_factory=list)
    started: float = 0.0  # monotonic time it was launched
    served: bool = False  # its endpoint has answered with readable metrics
    progress: tuple[int, float] = (0, 0.0)  # its furthest step seen, and since when


def read_endpoint(url: str) -> str | None:
    """The text a trial's metrics endpoint serves, or None when there is none to read.

    None when it is not serving yet, is gone, or hangs up in the middle of its answer (a
    trial process that exits while it is being scraped): the next poll reads it again, or
    the process's exit tells the rest.
    """
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
            body: bytes = response.read()
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return None
    return body.decode("utf-8", errors="replace")


class Backend(Protocol):
    """What `run_sweep` drives: local processes here, recorded curves in benchmarks.replay."""

    def launch(self, launch: Launch) -> None: ...
    def stop(self, trial: str) -> None: ...
    def promote(self, promotion: Promote) -> None: ...
    def observe(self) -> list[Observation]: ...


class LocalBackend:
    """Launch, stop and observe trial processes on this machine."""

    def __init__(
        self,
        sweep: LRSweep,
        workdir: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        grace: float = STOP_GRACE,
        gate_timeout: float = GATE_TIMEOUT,
        silence: float = SILENCE,
        progress_deadline: float = PROGRESS_DEADLINE,
    ) -> None:
        self.sweep = sweep
        self.workdir = workdir
        self.clock = clock
        self.grace = grace
        self.gate_timeout = gate_timeout
        self.silence = silence
        self.progress_deadline = progress_deadline
        self.attempts: dict[str, _Attempt] = {}
        (workdir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        self._lock = _hold(workdir)

    def launch(self, launch: Launch) -> None:
        name = f"{self.sweep.metadata.name}-{launch.trial}-{launch.attempt}"
        base = attempt_files(self.workdir, launch.trial, launch.attempt)
        summary = base.with_suffix(".summary.json")
        summary.unlink(missing_ok=True)
        port = free_port()
        contract = contract_env(
            launch,
            sweep=self.sweep.metadata.name,
            metrics_port=port,
            # Absolute: the process may run elsewhere (the container's workingDir).
            termination_path=str(summary.absolute()),
            metrics_host="127.0.0.1",
            gate_timeout=self.gate_timeout,
            checkpoint_dir=str(checkpoint_dir(self.workdir, launch.trial)),
            checkpoint_every=self.sweep.spec.trial.checkpointEvery,
        )
        argv, env = build_process(self.sweep.spec.trial.template, contract, name)
        log = base.with_suffix(".log").open("wb")
        try:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=working_dir(self.sweep.spec.trial.template),
                # Its own process group: Ctrl-C reaches the sweep, which stops trials itself.
                start_new_session=True,
            )
        except OSError as err:
            log.close()
            raise SpecError(f"trial.template: cannot start {argv[0]!r}: {err.strerror}") from None
        self.attempts[launch.trial] = _Attempt(
            launch,
            process,
            summary,
            base.with_suffix(".log"),
            log,
            f"http://127.0.0.1:{port}/",
            started=self.clock(),
            progress=(0, self.clock()),
        )

    def stop(self, trial: str) -> None:
        """The sweep stopped the trial for good: its checkpoint goes once its process exits."""
        attempt = self.attempts.get(trial)
        if attempt is not None:
            attempt.decided = True
            self._terminate(attempt)

    def _terminate(self, attempt: _Attempt) -> None:
        if attempt.stop_at is not None or attempt.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(attempt.process.pid, signal.SIGTERM)
        attempt.stop_at = self.clock()

    def promote(self, promotion: Promote) -> None:
        """Let a trial paused at a rung go on (docs/contract.md, "Rung gate")."""
        attempt = self.attempts.get(promotion.trial)
        if attempt is None or attempt.launch.attempt != promotion.attempt:
            return
        if promotion.rung <= attempt.promoted or attempt.process.poll() is not None:
            return
        request = urllib.request.Request(
            f"{attempt.url.rstrip('/')}{CONTINUE_PATH}?step={promotion.rung}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT):
                attempt.promoted = promotion.rung
        except (OSError, http.client.HTTPException):
            return  # not serving (yet, or any more): the next loop tries again

    def _enforce_grace(self, attempt: _Attempt) -> None:
        if attempt.stop_at is not None and self.clock() - attempt.stop_at > self.grace:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(attempt.process.pid, signal.SIGKILL)

    def _scrape(self, attempt: _Attempt) -> Reading | None:
        text = read_endpoint(f"{attempt.url.rstrip('/')}{HISTORY_PATH}")
        if text is None:
            return None
        serving = {"sweep": self.sweep.metadata.name, "trial": attempt.launch.trial}
        try:
            return parse_metrics(text, serving)
        except MetricsError as err:
            attempt.last_error = str(err)
            return None

    def _log_tail(self, attempt: _Attempt) -> str:
        try:
            lines = attempt.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-LOG_TAIL:] if lines else ""

    def _ended(self, attempt: _Attempt, code: int) -> Observation:
        attempt.log.close()
        launch = attempt.launch
        if attempt.decided:
            shutil.rmtree(checkpoint_dir(self.workdir, launch.trial), ignore_errors=True)
        summary: Reading | None = None
        problem = ""
        try:
            summary = parse_summary(attempt.summary_path.read_text())
        except FileNotFoundError:
            problem = (
                "no summary written: does it report through lrsweep_trainer.report? "
                "README, 'Your own training script'"
            )
        except (OSError, ValueError) as err:
            problem = f"unreadable summary: {err}"
        return exit_observation(
            launch.trial,
            launch.attempt,
            code,
            summary,
            detail=self._log_tail(attempt) if code != 0 else "",
            missing=f"exited without a result ({problem})",
        )

    def observe(self) -> list[Observation]:
        observations: list[Observation] = []
        for trial, attempt in list(self.attempts.items()):
            if attempt.reported:
                continue
            code = attempt.process.poll()
            launch = attempt.launch
            if code is None:
                self._enforce_grace(attempt)
                reading = self._scrape(attempt)
                attempt.served = attempt.served or reading is not None
                if not attempt.served and self.clock() - attempt.started > self.silence:
                    url = f"{attempt.url.rstrip('/')}{HISTORY_PATH}"
                    observations.append(self._end_failed(attempt, silent_reason(url, self.silence)))
                    continue
                step = reading.furthest_step if reading else 0
                if step > attempt.progress[0]:
                    attempt.progress = (step, self.clock())
                elif self.clock() - attempt.progress[1] > self.progress_deadline:
                    why = stalled_reason(attempt.progress[0], self.progress_deadline)
                    observations.append(self._end_failed(attempt, why))
                    continue
                observations.append(running_observation(trial, launch.attempt, reading))
                continue
            attempt.reported = True
            observations.append(self._ended(attempt, code))
        return observations

    def _end_failed(self, attempt: _Attempt, why: str) -> Observation:
        """End an attempt that is still running as a failed one: it never served metrics,
        or it has hung."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(attempt.process.pid, signal.SIGKILL)
        attempt.process.wait()
        attempt.reported = True
        attempt.log.close()
        return failed_attempt(attempt.launch.trial, attempt.launch.attempt, why)

    def running(self) -> int:
        return sum(1 for a in self.attempts.values() if a.process.poll() is None)

    def shutdown(self) -> None:
        """Stop every trial process still alive: SIGTERM, the grace period, then SIGKILL.

        Safe to call again: the second call finds nothing left to stop."""
        for attempt in self.attempts.values():
            self._terminate(attempt)  # their checkpoints stay, for `lrsweep run --resume`
        deadline = self.clock() + self.grace
        for attempt in self.attempts.values():
            remaining = max(0.0, deadline - self.clock())
            try:
                attempt.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(attempt.process.pid, signal.SIGKILL)
                attempt.process.wait()
            if not attempt.log.closed:
                attempt.log.close()
        self._lock.close()  # releases the directory


def lock_directory(workdir: Path, in_use: str) -> IO[str]:
    """Hold `workdir` for this process until the handle is closed; SpecError(`in_use`) when
    another process holds it."""
    handle = (workdir / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SpecError(in_use) from None
    return handle


def _hold(workdir: Path) -> IO[str]:
    """Lock `workdir` for one sweep: two sweeps in one directory would read each other's
    trial summaries (trial ids and attempt numbers repeat across sweeps)."""
    return lock_directory(
        workdir,
        f"{workdir} is in use by another sweep running on this machine; wait for it to "
        "end, or give this sweep another directory (lrsweep run --out DIR)",
    )


def run_sweep(
    sweep: Sweep,
    backend: Backend,
    *,
    interval: float = 0.5,
    on_decision: Callable[[Decision], None] = lambda d: None,
    sleep: Callable[[float], None] = time.sleep,
    records: Sequence[TrialRecord] = (),
    known_range: RangeTestResult | None = None,
) -> Decision:
    """Drive a sweep to its end through `backend` (local processes, or recorded curves in
    benchmarks.replay). The caller owns shutdown.

    `records` and `known_range`: where a resumed sweep stopped (see `resume`).
    """
    current = list(records)
    range_result = known_range
    while True:
        for obs in backend.observe():
            current = update(sweep, current, obs)
        decision = decide(sweep, current, range_result)
        range_result = decision.range_result
        current = list(decision.records)
        for stop in decision.stops:
            backend.stop(stop.trial)
        for promotion in decision.promotions:
            backend.promote(promotion)
        for launch in decision.launches:
            backend.launch(launch)
        on_decision(decision)
        if decision.done:
            return decision
        sleep(interval)


def run_local(
    sweep_doc: LRSweep,
    workdir: Path,
    *,
    interval: float = 0.2,
    on_decision: Callable[[Decision], None] = lambda d: None,
    gate_timeout: float = GATE_TIMEOUT,
) -> Decision:
    """Run a whole sweep with local processes; every trial process is gone on return.

    `gate_timeout`: how long a trial paused at a rung waits for the sweep's decision before
    training on (a backstop; a trial that trains on and is then cut has spent those steps).
    """
    sweep = Sweep(sweep_doc.spec, key=sweep_doc.metadata.uid or sweep_doc.metadata.name)
    backend = LocalBackend(sweep_doc, workdir, gate_timeout=gate_timeout)
    try:
        decision = run_sweep(sweep, backend, interval=interval, on_decision=on_decision)
    finally:
        backend.shutdown()
    discard_checkpoints(workdir)
    return decision


# --- the sweep's directory: status, document, resuming ----------------------------------------


def write_status(workdir: Path, status: LRSweepStatus) -> Path:
    """Replace DIR/result.json in one step: a reader, or a crash, never meets half a file.
    Strict JSON (`json_safe`): an infinite score is written as the largest finite number."""
    path = workdir / RESULT_FILE
    partial = path.with_name(f".{RESULT_FILE}.partial")
    document = json_safe(status.model_dump(mode="json"))
    partial.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    partial.replace(path)
    return path


def start_afresh(workdir: Path, sweep_doc: LRSweep, *, overwrite: bool) -> None:
    """Start a new sweep in `workdir` (locked by its backend). An earlier sweep's results are
    deleted only when asked (`overwrite`): otherwise refused, saying how to keep them."""
    if (workdir / SWEEP_FILE).exists():
        if not overwrite:
            raise SpecError(
                f"{workdir} holds an earlier sweep{_described(workdir)}; go on with it: "
                "--resume, start afresh there (deleting its results): --overwrite, or give "
                "another --out"
            )
        shutil.rmtree(workdir / TRIALS_DIR, ignore_errors=True)
        (workdir / TRIALS_DIR).mkdir()
        (workdir / REPORT_FILE).unlink(missing_ok=True)
    # An earlier sweep's trials had the same ids: none of their state may be taken for ours.
    discard_checkpoints(workdir)
    save_sweep(workdir, sweep_doc)


def _described(workdir: Path) -> str:
    """` (NAME, PHASE, best learning rate R)` of the sweep in `workdir`, as far as known."""
    try:
        saved, status = saved_sweep(workdir, "")
    except SpecError:
        return ""
    best = "" if status.bestLearningRate is None else f", best rate {status.bestLearningRate:g}"
    return f" ({saved.metadata.name}: {status.phase.value}{best})"


def save_sweep(workdir: Path, sweep_doc: LRSweep) -> None:
    """Start the directory afresh for a sweep: its document (what `resume` checks against),
    and no status yet (an earlier sweep's must never pass for this one's)."""
    (workdir / RESULT_FILE).unlink(missing_ok=True)
    text = sweep_doc.model_dump_json(indent=2, exclude={"status"})
    (workdir / SWEEP_FILE).write_text(text + "\n")


@dataclass(frozen=True)
class Resumed:
    """Where a sweep stopped: its trials (running ones queued again) and its range test."""

    records: tuple[TrialRecord, ...] = ()
    range_result: RangeTestResult | None = None
    start_time: str | None = None
    relaunched: tuple[str, ...] = ()  # trials that were running and start again


Model = TypeVar("Model", bound=BaseModel)


def _read_saved(path: Path, model: type[Model], hint: str) -> Model:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(
            f"{path.parent} holds no sweep of `lrsweep run` ({path.name} is missing); {hint}"
        ) from None
    except OSError as err:
        raise SpecError(f"cannot read {path}: {err.strerror}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise SpecError(
            f"{path} is not a saved {model.__name__} ({where}: {first['msg']}); {hint}"
        ) from None


def saved_sweep(workdir: Path, hint: str) -> tuple[LRSweep, LRSweepStatus]:
    """The document and the last status of the sweep `lrsweep run` ran in `workdir`.

    `hint` says what to do when there is none (SpecError), for the command that asks.
    """
    return (
        _read_saved(workdir / SWEEP_FILE, LRSweep, hint),
        _read_saved(workdir / RESULT_FILE, LRSweepStatus, hint),
    )


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}"))
    return flat


def _differences(saved: LRSweep, new: LRSweep) -> list[str]:
    """The fields in which two sweep documents differ, as `field: old -> new`."""

    def fields(doc: LRSweep) -> dict[str, Any]:
        return {"metadata.name": doc.metadata.name, **_flatten(doc.spec.model_dump(), "spec")}

    old, now = fields(saved), fields(new)
    return [
        f"{key}: {old.get(key, 'unset')!r} -> {now.get(key, 'unset')!r}"
        for key in sorted(old.keys() | now.keys())
        if old.get(key) != now.get(key)
    ]


def with_curves(workdir: Path, records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Decided trials with the evaluations their summaries kept (a status has no curves)."""
    return [_with_curve(workdir, r) for r in records]


def _with_curve(workdir: Path, record: TrialRecord) -> TrialRecord:
    if not record.terminal or record.attempts == 0:
        return record
    path = attempt_files(workdir, record.id, record.attempts).with_suffix(".summary.json")
    try:
        reading = parse_summary(path.read_text())
    except (OSError, ValueError):
        return record  # the curve only draws the report; the result is in the status
    return replace(
        record, points=reading.points, range_curve=reading.range_curve or record.range_curve
    )


def resume(workdir: Path, sweep_doc: LRSweep) -> Resumed:
    """Where the sweep in `workdir` stopped, to go on from there (`lrsweep run --resume`).

    Refused, saying what differs, unless the directory's sweep has the same name and spec:
    its results were measured with that spec. Decided trials keep their results; trials
    that were running lost their process with the sweep and start again.
    """
    saved, status = saved_sweep(workdir, "run without --resume to start the sweep there")
    changed = _differences(saved, sweep_doc)
    if changed:
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if changed[3:] else "")
        raise SpecError(
            f"{workdir} holds a sweep with a different document ({shown}); resume with the "
            "document it ran, or run without --resume to start over (or give this one "
            "another --out)"
        )
    records = with_curves(workdir, records_from_status(status))
    resumed = [interrupted(r) for r in records]
    return Resumed(
        records=tuple(resumed),
        range_result=range_result_from_status(status.rangeTest),
        start_time=status.startTime,
        relaunched=tuple(r.id for r, again in zip(records, resumed, strict=True) if r != again),
    )
