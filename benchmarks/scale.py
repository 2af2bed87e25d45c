"""The operator at cluster scale: N sweeps x M trials, parallelism P each, for growing N.

    python -m benchmarks.scale [--sweeps 1 10 50 100] [--trials 32] [--parallelism 8]
        [--out benchmarks/results/scale.json]

For each N, a fresh test cluster (tests/harness) whose trial pods are simulated trainers
(tests/harness/simulated.py: the trainer contract served by the kubelet stand-in, no
process per pod), the operator as a process of its own, and N ASHA sweeps of M trials applied
at once. The sweeps come in a few variants (the simulated loss curve's best rate differs),
each also run alone first, for the winner it reaches alone.

The harness records every pod and sweep event as it stores it (no API requests), and counts
the requests the operator sends. Reported per N:

- concurrency_share: over each sweep's life (apply to its end), the trial pods running
  (phase Running) over the pods it asks for (min(parallelism, trials not yet decided)),
  time-weighted, all sweeps together; concurrency_lost: the share lost before the sweep's
  first pod (the operator), while a pod was starting (the test cluster), while a pod that
  had ended waited for the status to decide its trial (the operator), and with no pod at
  all otherwise (the operator);
- first_pod_p50_s / first_pod_p95_s: apply -> the sweep's first trial pod Running;
- status_lag_p50_intervals / status_lag_p95_intervals: a trial pod that ended on its own (its
  whole budget, or diverged) -> the sweep's status showing the trial decided, in reconcile
  (scrape) intervals;
- rss_mib (peak) and cpu_cores (mean) of the operator, cluster_cpu_cores of the test cluster
  (this process: API server, kubelet, simulated trainers, the recording);
- api_rps: the operator's requests per second by verb and resource, and per sweep;
- operator_reconciles: from the operator's /metrics (the restarted process), the mean and
  p95 (a bucket's bound) time of its reconciles, and of a sweep due waiting for one;
- status_bytes: the largest sweep status seen (JSON);
- resume_s: once every sweep has its first pod, the operator is stopped and started again;
  the time from the new process's start until every sweep not yet over has had a status
  write from it (the restart window is left out of the share and lag figures). A sweep
  with nothing decided since writes only its progress, at most every
  LRSWEEP_PROGRESS_WRITE_INTERVAL (10 s): an upper bound on when it was reconciled;
- winners_match: every sweep's best rate equals the one its variant reaches alone;
- limit: where a target is missed, which part was at its limit first: the operator or the
  test cluster (each is one Python process: about one core at most), with their CPU;
  machine_load: the machine's mean 1-minute load average meanwhile (other work on it slows
  both parts alike).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import cluster as e2e
from tests.harness.kubelet import NodeConfig
from tests.harness.pytest_plugin import DEFAULT_IMAGES, Capabilities, KubeCluster
from tests.harness.simulated import OPTIMUM, SIMULATED_IMAGE, STEP_SECONDS
from tests.harness.store import WatchEvent
from tests.harness.threaded import ThreadedHarness

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "default"
GROUP, VERSION, PLURAL = "lrsweep.dev", "v1alpha1", "lrsweeps"
RECONCILE_INTERVAL = 2.0  # the operator's default: one scrape of each trial per interval
# The chart's defaults (tests/e2e's operator runs faster ones).
DEFAULT_SETTINGS = {
    "LRSWEEP_RECONCILE_INTERVAL": str(RECONCILE_INTERVAL),
    "LRSWEEP_STOP_GRACE_SECONDS": "10",
    "LRSWEEP_GATE_TIMEOUT": "300",
    "LRSWEEP_PROGRESS_WRITE_INTERVAL": "10",
}
TERMINAL = ("Succeeded", "Stopped", "Diverged", "Failed")
SWEEP_OVER = ("Succeeded", "Failed")
# The variants' best rates (the simulated loss curve's optimum).
OPTIMA = (0.1, 0.01)
SAMPLE_S = 0.5
# Targets at 100 sweeps x 32 trials (parallelism 8).
TARGETS = {
    "concurrency_share": 0.95,
    "first_pod_p95_s": 5.0,
    "status_lag_p95_intervals": 2.0,
    "rss_mib": 300.0,
    "cpu_cores": 1.0,
    "resume_s": 30.0,
}


def sweep_doc(name: str, trials: int, parallelism: int, variant: int, step_s: float) -> Any:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LRSweep",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "search": {
                "strategy": "asha",
                "min": 1e-4,
                "max": 10.0,
                "candidates": trials,
                "maxTrials": trials,
                "parallelism": parallelism,
            },
            "budget": {"steps": 300, "evalEvery": 25, "minSteps": 25, "reductionFactor": 3},
            "objective": {"metric": "val_loss", "goal": "minimize"},
            "trial": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "trainer",
                                "image": f"{SIMULATED_IMAGE}:0.1.0",
                                "env": [
                                    {"name": OPTIMUM, "value": str(OPTIMA[variant])},
                                    {"name": STEP_SECONDS, "value": str(step_s)},
                                ],
                            }
                        ]
                    }
                },
                "metricsPort": 9090,
            },
        },
    }


def percentile(values: Iterable[float], q: int) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1 if q else 0]


# --- what the harness stores, as it stores it ------------------------------------------------


@dataclass(frozen=True)
class PodEvent:
    at: float
    sweep: str
    pod: str
    trial: str
    attempt: int
    running: bool  # phase Running and not being deleted
    ended: bool  # phase Succeeded or Failed
    gone: bool = False  # deleted for good
    leaving: bool = False  # being deleted (a deletionTimestamp)


@dataclass(frozen=True)
class SweepEvent:
    at: float
    sweep: str
    phase: str
    undecided: int  # trials not yet decided, those not yet added included
    decided: frozenset[str]
    status_bytes: int
    best: float | None


@dataclass
class Recording:
    trials: int
    pods: list[PodEvent] = field(default_factory=list)
    sweeps: list[SweepEvent] = field(default_factory=list)
    # Kept as the events come, for the run's checks every sample (rather than a pass over
    # every event so far each time): sweeps that have had a trial pod running, sweeps over,
    # and each sweep's latest status write.
    started: set[str] = field(default_factory=set)
    over: set[str] = field(default_factory=set)
    written: dict[str, float] = field(default_factory=dict)

    def pod(self, event: WatchEvent) -> None:
        meta = event.object["metadata"]
        labels = meta.get("labels") or {}
        sweep = labels.get(f"{GROUP}/sweep")
        if sweep is None:
            return
        phase = (event.object.get("status") or {}).get("phase")
        gone = event.type == "DELETED"
        recorded = PodEvent(
            time.monotonic(),
            sweep,
            meta["name"],
            labels.get(f"{GROUP}/trial", ""),
            int(labels.get(f"{GROUP}/attempt", "0")),
            running=phase == "Running" and not gone and not meta.get("deletionTimestamp"),
            ended=phase in ("Succeeded", "Failed"),
            gone=gone,
            leaving=bool(meta.get("deletionTimestamp")),
        )
        self.pods.append(recorded)
        if recorded.running:
            self.started.add(sweep)

    def sweep(self, event: WatchEvent) -> None:
        status = event.object.get("status") or {}
        trials = status.get("trials") or {}
        decided = frozenset(t for t, s in trials.items() if s.get("phase") in TERMINAL)
        recorded = SweepEvent(
            time.monotonic(),
            event.object["metadata"]["name"],
            str(status.get("phase", "")),
            self.trials - len(decided),
            decided,
            len(json.dumps(status, separators=(",", ":"))),
            status.get("bestLearningRate"),
        )
        self.sweeps.append(recorded)
        self.written[recorded.sweep] = recorded.at
        if recorded.phase in SWEEP_OVER:
            self.over.add(recorded.sweep)


class _Tap(asyncio.Queue[WatchEvent | None]):
    """A watcher's queue that hands each event to `record` as the store writes it."""

    def __init__(self, record: Callable[[WatchEvent], None]) -> None:
        super().__init__()
        self._record = record

    def put_nowait(self, item: WatchEvent | None) -> None:
        if item is not None:
            self._record(item)


def tap(harness: ThreadedHarness, recording: Recording) -> None:
    def subscribe() -> None:
        inner = harness.harness
        for (group, version, plural), record in (
            (("", "v1", "pods"), recording.pod),
            ((GROUP, VERSION, PLURAL), recording.sweep),
        ):
            rtype = inner.registry.lookup(group, version, plural)
            assert rtype is not None, plural
            watcher, _ = inner.store.subscribe(rtype.storage_key, None, droppable=False)
            watcher.queue = _Tap(record)

    harness.call(subscribe)


# --- the operator, as a process --------------------------------------------------------------


class Operator:
    """`lrsweep operator` as a process (tests/e2e's, at the chart's default settings), its
    CPU and peak RSS sampled from /proc."""

    def __init__(self, cluster: KubeCluster, log: Path) -> None:
        self.inner = e2e.Operator(cluster, NAMESPACE, log, settings=DEFAULT_SETTINGS)
        self.cpu_s = 0.0  # of processes that have ended
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.inner.process

    def start(self) -> float:
        self.inner.start()
        if not self._sampler.is_alive():
            self._sampler.start()
        return time.monotonic()

    def stop(self) -> None:
        last = self._cpu()
        self.inner.stop()
        self.cpu_s += last
        self.inner.process = None

    def close(self) -> None:
        self.stop()
        self._stop.set()

    def reconciles(self) -> dict[str, float | None]:
        """From the operator's own /metrics (the process now running, since its start): its
        reconciles' mean and p95 time, and how long sweeps due waited for one."""
        url = f"http://127.0.0.1:{self.inner.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return {}
        families = {f.name: f for f in text_string_to_metric_families(text)}
        out: dict[str, float | None] = {}
        for key, name in (
            ("reconcile", "lrsweep_reconcile_duration_seconds"),
            ("wait", "lrsweep_reconcile_wait_seconds"),
        ):
            samples = families[name].samples if name in families else []
            total = {s.name.removeprefix(name): s.value for s in samples if "le" not in s.labels}
            buckets = sorted((float(s.labels["le"]), s.value) for s in samples if "le" in s.labels)
            count = total.get("_count", 0.0)
            out[f"{key}_mean_s"] = total["_sum"] / count if count else None
            # The upper bound of the bucket the 95th percentile falls in.
            out[f"{key}_p95_s_at_most"] = next(
                (bound for bound, seen in buckets if count and seen >= 0.95 * count), None
            )
        return out

    def cpu_total(self) -> float:
        return self.cpu_s + self._cpu()

    def _cpu(self) -> float:
        process = self.process
        if process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            process = self.process
            if process is None:
                continue
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))


# --- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    sweeps: int
    trials: int
    parallelism: int
    step_s: float
    timeout: float
    restart: bool = True
    variants: int = len(OPTIMA)
    offset: int = 0  # sweep i is of variant (i + offset) % variants


def name_of(i: int) -> str:
    return f"scale-{i:03d}"


def variant_of(i: int, config: Config) -> int:
    return (i + config.offset) % config.variants


def cluster_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(config: Config, work: Path, tag: str) -> dict[str, Any]:
    """Run `config.sweeps` sweeps to their end (or the timeout); the raw observations."""
    state = work / f"harness-{tag}"
    state.mkdir()
    pods = config.sweeps * config.parallelism * 2 + 100
    node = NodeConfig(cpu="100000", memory="100000Gi", pods=pods)
    recording = Recording(config.trials)
    with ThreadedHarness(node=node, images=DEFAULT_IMAGES, state_dir=state) as harness:
        capabilities = Capabilities(local_kubelet=True, faults=True)
        cluster = KubeCluster(harness.kubeconfig_path, capabilities, harness, work / "cache")
        e2e.install_crd(cluster)
        tap(harness, recording)
        operator = Operator(cluster, work / f"operator-{tag}.log")
        try:
            operator.start()
            time.sleep(3.0)  # the operator's start-up is not the sweeps' apply -> first pod
            return _drive(config, harness, operator, recording, work, tag)
        finally:
            operator.close()


def _apply(harness: ThreadedHarness, docs: list[Any]) -> dict[str, float]:
    """Create the sweeps; when each was created."""
    api = kube_config.new_client_from_config(str(harness.kubeconfig_path))  # type: ignore[no-untyped-call]
    custom = client.CustomObjectsApi(api)
    applied = {}
    try:
        for doc in docs:
            applied[doc["metadata"]["name"]] = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, doc)
    finally:
        api.close()
    return applied


def _drive(
    config: Config,
    harness: ThreadedHarness,
    operator: Operator,
    recording: Recording,
    work: Path,
    tag: str,
) -> dict[str, Any]:
    names = [name_of(i) for i in range(config.sweeps)]
    docs = [
        sweep_doc(n, config.trials, config.parallelism, variant_of(i, config), config.step_s)
        for i, n in enumerate(names)
    ]
    requests_before = harness.request_counts()
    cpu_before, operator_cpu_before = cluster_cpu(), operator.cpu_total()
    applied = _apply(harness, docs)
    started = min(applied.values())
    restart: tuple[float, float, float] | None = None  # stopped, started again, resumed
    deadline = started + config.timeout
    load: list[float] = []  # the machine's (1-minute load average): others' work counts too
    while time.monotonic() < deadline:
        time.sleep(SAMPLE_S)
        load.append(os.getloadavg()[0])
        if recording.over.issuperset(names):
            break
        if config.restart and restart is None and _all_started(recording, names):
            restart = _restart(operator, recording, names, deadline)
    ended = time.monotonic()
    reconciles = operator.reconciles()
    requests = Counter(harness.request_counts())
    requests.subtract(requests_before)
    requests[f"create {PLURAL}"] -= len(docs)  # ours, not the operator's
    return {
        "names": names,
        "variants": {n: variant_of(i, config) for i, n in enumerate(names)},
        "applied": applied,
        "wall_s": ended - started,
        "restart": restart,
        "ended": ended,
        "requests": {k: v for k, v in requests.items() if v > 0},
        "operator_cpu_s": operator.cpu_total() - operator_cpu_before,
        "cluster_cpu_s": cluster_cpu() - cpu_before,
        "rss_mib": operator.peak_rss_kib / 1024,
        "load": statistics.fmean(load) if load else None,
        "pods": list(recording.pods),
        "sweeps": list(recording.sweeps),
        "reconciles": reconciles,
    }


def _all_started(recording: Recording, names: list[str]) -> bool:
    return recording.started.issuperset(names)


def _restart(
    operator: Operator, recording: Recording, names: list[str], deadline: float
) -> tuple[float, float, float]:
    """Stop the operator and start it again; wait until it has written every sweep not yet
    over. Returns (stopped, started, resumed) times; resumed is NaN if the deadline came."""
    stopped = time.monotonic()
    operator.stop()
    waiting = set(names) - recording.over
    started = operator.start()
    while time.monotonic() < deadline:
        if all(recording.written.get(sweep, -math.inf) > started for sweep in waiting):
            return stopped, started, time.monotonic()
        time.sleep(0.1)
    return stopped, started, math.nan


# --- what a run says -------------------------------------------------------------------------


def _outside(at: float, window: tuple[float, float] | None) -> bool:
    return window is None or not window[0] <= at <= window[1]


@dataclass
class _Slots:
    """One sweep's trial pods at a moment of the timeline, by what they are waiting for."""

    running: set[str] = field(default_factory=set)
    starting: set[str] = field(default_factory=set)  # created, not yet running
    ended: dict[str, str] = field(default_factory=dict)  # ended on its own: pod -> trial
    created: bool = False  # any pod yet

    def apply(self, event: PodEvent) -> None:
        self.created = True
        for pods in (self.running, self.starting):
            pods.discard(event.pod)
        self.ended.pop(event.pod, None)
        if event.running:
            self.running.add(event.pod)
        elif event.ended and not event.gone:
            self.ended[event.pod] = event.trial
        elif not event.gone and not event.ended and not event.leaving:
            self.starting.add(event.pod)

    def decided(self, trials: frozenset[str]) -> None:
        self.ended = {pod: t for pod, t in self.ended.items() if t not in trials}


# Where the slots a sweep asks for and does not hold went: all of them before its first pod
# (the operator to reconcile the new sweep); then, in this order, a pod created and not yet
# running (the test cluster starting it), a pod that ended on its own whose trial the status
# does not yet show decided (the operator to notice), and no pod at all (the operator to
# create one; a stopped trial's pod on its way out included).
LOSSES = ("not_started", "starting", "awaiting_operator", "no_pod")


def concurrency(
    raw: Mapping[str, Any], parallelism: int, trials: int
) -> tuple[float | None, dict[str, float]]:
    """Running trial pods over those asked for, time-weighted over each sweep's life; and the
    share of those asked for lost to each of LOSSES."""
    window = _window(raw)
    timeline: list[tuple[float, int, Any]] = [(e.at, 0, e) for e in raw["pods"]]
    timeline += [(e.at, 1, e) for e in raw["sweeps"]]
    timeline.sort(key=lambda item: (item[0], item[1]))
    slots: dict[str, _Slots] = defaultdict(_Slots)
    undecided = dict.fromkeys(raw["names"], trials)
    live = {n: raw["applied"][n] for n in raw["names"]}  # sweeps not over: since when counted
    held = asked = 0.0
    lost = dict.fromkeys(LOSSES, 0.0)
    last = min(raw["applied"].values())

    def accumulate(until: float) -> None:
        nonlocal held, asked
        span = until - last
        if span <= 0 or not _outside((last + until) / 2, window):
            return
        for sweep in live:
            pods = slots[sweep]
            want = min(parallelism, undecided[sweep])
            have = min(want, len(pods.running))
            asked += want * span
            held += have * span
            short = want - have
            if not pods.created:
                lost["not_started"] += short * span
                continue
            for loss, count in (
                ("starting", len(pods.starting)),
                ("awaiting_operator", len(pods.ended)),
            ):
                taken = min(short, count)
                lost[loss] += taken * span
                short -= taken
            lost["no_pod"] += short * span

    for at, _, event in timeline:
        accumulate(at)
        last = max(last, at)
        if isinstance(event, PodEvent):
            slots[event.sweep].apply(event)
        else:
            undecided[event.sweep] = event.undecided
            slots[event.sweep].decided(event.decided)
            if event.phase in SWEEP_OVER:
                live.pop(event.sweep, None)
    accumulate(raw["ended"])
    if not asked:
        return None, {}
    return held / asked, {loss: value / asked for loss, value in lost.items()}


def concurrency_share(raw: Mapping[str, Any], parallelism: int, trials: int) -> float | None:
    """Running trial pods over those asked for, time-weighted over each sweep's life."""
    return concurrency(raw, parallelism, trials)[0]


def _window(raw: Mapping[str, Any]) -> tuple[float, float] | None:
    restart = raw["restart"]
    if restart is None:
        return None
    stopped, _, resumed = restart
    return stopped, resumed if math.isfinite(resumed) else raw["ended"]


def first_pod_seconds(raw: Mapping[str, Any]) -> list[float]:
    first: dict[str, float] = {}
    for event in raw["pods"]:
        if event.running and event.sweep not in first:
            first[event.sweep] = event.at
    return [first[n] - raw["applied"][n] for n in raw["names"] if n in first]


def status_lags(raw: Mapping[str, Any]) -> list[float]:
    """Seconds from a trial pod ending on its own to its sweep's status deciding the trial."""
    window = _window(raw)
    decided_at: dict[tuple[str, str], float] = {}
    for event in raw["sweeps"]:
        for trial in event.decided:
            decided_at.setdefault((event.sweep, trial), event.at)
    lags = []
    seen: set[str] = set()
    for event in raw["pods"]:
        if not event.ended or event.pod in seen:
            continue
        seen.add(event.pod)
        decided = decided_at.get((event.sweep, event.trial))
        # Decided before the pod ended: the sweep stopped it, nothing to catch up on.
        if decided is not None and decided >= event.at and _outside(event.at, window):
            lags.append(decided - event.at)
    return lags


def summarise(raw: Mapping[str, Any], config: Config, solo: Mapping[int, float | None]) -> Any:
    wall = raw["wall_s"]
    finals: dict[str, SweepEvent] = {}
    for event in raw["sweeps"]:
        finals[event.sweep] = event
    best = {n: finals[n].best if n in finals else None for n in raw["names"]}
    first = first_pod_seconds(raw)
    lags = [lag / RECONCILE_INTERVAL for lag in status_lags(raw)]
    share, lost = concurrency(raw, config.parallelism, config.trials)
    requests: dict[str, int] = raw["requests"]
    rps = {verb: round(count / wall, 2) for verb, count in sorted(requests.items())}
    total = sum(requests.values()) / wall
    restart = raw["restart"]
    resume = None if restart is None else restart[2] - restart[1]
    run = {
        "sweeps": config.sweeps,
        "trials_per_sweep": config.trials,
        "parallelism": config.parallelism,
        "concurrency_share": _round(share),
        "first_pod_p95_s": _round(percentile(first, 95)),
        "status_lag_p95_intervals": _round(percentile(lags, 95)),
        "rss_mib": round(raw["rss_mib"], 1),
        "cpu_cores": round(raw["operator_cpu_s"] / wall, 3),
        "api_rps": {"total": round(total, 2), "per_sweep": round(total / config.sweeps, 3), **rps},
        "resume_s": _round(resume),
        "winners_match": all(
            best[n] is not None and best[n] == solo.get(raw["variants"][n]) for n in raw["names"]
        ),
        "first_pod_p50_s": _round(percentile(first, 50)),
        "status_lag_p50_intervals": _round(percentile(lags, 50)),
        "concurrency_lost": {loss: _round(value) for loss, value in lost.items()},
        "operator_reconciles": {k: _round(v) for k, v in raw.get("reconciles", {}).items()},
        "status_bytes": max((e.status_bytes for e in raw["sweeps"]), default=0),
        "cluster_cpu_cores": round(raw["cluster_cpu_s"] / wall, 3),
        "sweeps_finished": sum(1 for e in finals.values() if e.phase in SWEEP_OVER),
        "machine_load": _round(raw["load"], 2),
        "wall_s": round(wall, 1),
    }
    run["limit"] = limit(run)
    return run


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def missed(run: Mapping[str, Any]) -> list[str]:
    """The targets this run misses (checked at every N: they are the 100-sweep targets)."""
    out = []
    for key, target in TARGETS.items():
        value = run.get(key)
        low_is_bad = key == "concurrency_share"
        if value is None or (value < target if low_is_bad else value > target):
            out.append(key)
    if not run.get("winners_match"):
        out.append("winners_match")
    return out


def limit(run: Mapping[str, Any]) -> str:
    """Which part ran out first where a target is missed: each part is one Python process,
    so the one nearer a whole core is the one at its limit."""
    misses = missed(run)
    if not misses:
        return "none: every target met"
    operator, cluster = run["cpu_cores"], run["cluster_cpu_cores"]
    part = "operator" if operator >= cluster else "test cluster"
    return (
        f"{part} (operator {operator:.2f} cores, test cluster {cluster:.2f} cores of "
        f"{os.cpu_count()} on this machine, load {run.get('machine_load')}); missed: "
        f"{', '.join(misses)}"
    )


# --- the report ------------------------------------------------------------------------------


PLOTTED = (
    ("concurrency_share", "concurrency held (share)"),
    ("first_pod_p95_s", "apply -> first pod p95 (s)"),
    ("status_lag_p95_intervals", "trial end -> status p95 (intervals)"),
    ("rss_mib", "operator RSS (MiB)"),
    ("cpu_cores", "operator CPU (cores)"),
    ("cluster_cpu_cores", "test cluster CPU (cores)"),
    ("api_rps_per_sweep", "API requests/s per sweep"),
    ("status_bytes", "largest status (bytes)"),
    ("resume_s", "restart -> all sweeps resumed (s)"),
)


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 3, figsize=(12, 10))
    xs = [r["sweeps"] for r in runs]
    for axis, (key, label) in zip(axes.flat, PLOTTED, strict=True):
        ys = [r["api_rps"]["per_sweep"] if key == "api_rps_per_sweep" else r.get(key) for r in runs]
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        axis.set_title(label, fontsize=10)
        axis.set_xlabel("sweeps")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sweeps", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument(
        "--step-seconds", type=float, default=0.1, help="simulated seconds per training step"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    args = parser.parse_args(argv)

    def run_config(sweeps: int, restart: bool = True) -> Config:
        variants = min(len(OPTIMA), max(args.sweeps))
        return Config(
            sweeps,
            args.trials,
            args.parallelism,
            args.step_seconds,
            args.timeout,
            restart,
            variants,
        )

    with tempfile.TemporaryDirectory(prefix="lrsweep-scale-") as tmp:
        work = Path(tmp)
        solo: dict[int, float | None] = {}
        variants = run_config(1).variants
        for variant in range(variants):
            alone = replace(run_config(1, restart=False), offset=variant)
            solo[variant] = _alone(one_run(alone, work, f"alone-{variant}"))
            print(f"variant {variant} alone: best rate {solo[variant]}", flush=True)
        runs = []
        for sweeps in args.sweeps:
            raw = one_run(run_config(sweeps), work, f"{sweeps}")
            run = summarise(raw, run_config(sweeps), solo)
            runs.append(run)
            print(json.dumps(run), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    title = f"{args.trials} trials per sweep, parallelism {args.parallelism}"
    plot(runs, args.out.with_suffix(".png"), title)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _alone(raw: Mapping[str, Any]) -> float | None:
    """The best rate the one sweep of a run reached."""
    finals = [e for e in raw["sweeps"] if e.phase in SWEEP_OVER]
    return finals[-1].best if finals else None


if __name__ == "__main__":
    main()
