"""A scheduler and kubelet for one Node: pods become local processes.

Scheduling honours resource requests against the Node's allocatable capacity (cpu, memory,
pods, `nvidia.com/gpu` and any other extended resource) and `nodeSelector`; a pod that does
not fit stays Pending with `PodScheduled=False, reason=Unschedulable` and the scheduler's
message, and is retried whenever capacity frees up or the Node changes.

Each container runs its `command` + `args` (or, with no command, the entrypoint the harness
was given for its image) with the pod's environment (its service account's credentials as a
KUBECONFIG), its own loopback IP as `status.podIP` (which Python processes binding 0.0.0.0
bind instead), stdout+stderr as its log, and a private termination-message file: with mount
namespaces (root), the file is bind-mounted over `terminationMessagePath` in a mount
namespace of the container's own; without them, the path is shared by all pods (documented
fallback). Each container is a process group of its own, killed when its main process ends
and when the kubelet stops. A Node with GPUs carries NVIDIA GPU feature discovery's labels.
The containers of images a `ContainerRuntime` names run as podman containers instead
(tests/harness/containers.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import itertools
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from tests.harness.api import Api
from tests.harness.controllers import PACING
from tests.harness.meta import ApiError, Obj, kubeconfig, timestamp
from tests.harness.quantity import parse_quantity
from tests.harness.resources import ResourceType
from tests.harness.simulated import SimulatedTrainer, selected
from tests.harness.store import Watcher

if TYPE_CHECKING:
    from tests.harness.containers import ContainerRuntime

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096  # bytes of a termination message kept, as the kubelet does
_MOUNT_SCRIPT = 'mount --bind "$1" "$2" || exit 125; shift 2; exec "$@"'
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
POD_IP_VARIABLE = "HARNESS_POD_IP"
# On the PYTHONPATH of every container: Python processes of a pod that bind the IPv4
# wildcard address bind their pod's IP instead, as if the pod had a network namespace of its
# own, so that pods serving one port (the operator's 8080 and 8081, say) never collide.
_SITECUSTOMIZE = f'''"""Written by the LRSweep test harness's kubelet (tests/harness/kubelet.py)."""
import importlib.machinery
import importlib.util
import os
import socket
import sys

_POD_IP = os.environ.get("{POD_IP_VARIABLE}")
_bind = socket.socket.bind


def _bind_pod_ip(self, address):
    if (
        _POD_IP
        and self.family == socket.AF_INET
        and isinstance(address, tuple)
        and address[0] in ("", "0.0.0.0")
    ):
        address = (_POD_IP, *address[1:])
    return _bind(self, address)


socket.socket.bind = _bind_pod_ip

# Then the sitecustomize this one hides, if the interpreter has one.
_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
'''


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """The single Node the kubelet stand-in serves."""

    name: str = "harness-node"
    cpu: str = "8"
    memory: str = "32Gi"
    gpus: int = 0
    pods: int = 110
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def capacity(self) -> dict[str, str]:
        capacity = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            "ephemeral-storage": "100Gi",
        }
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
        return capacity

    def node_labels(self) -> dict[str, str]:
        """The Node's labels: the kubelet's well-known ones, NVIDIA GPU feature discovery's
        when it has GPUs, then `labels` (which win)."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }
        if self.gpus:
            labels.update(GPU_FEATURE_LABELS)
            labels["nvidia.com/gpu.count"] = str(self.gpus)
        return {**labels, **self.labels}


# The labels NVIDIA's GPU feature discovery puts on a GPU node (plus `gpu.present`, which the
# GPU operator's node-feature-discovery rule sets), for an A100 40GB: nodeSelectors written
# for real GPU nodes (`nvidia.com/gpu.present: "true"`) match the harness's node.
GPU_FEATURE_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
    "nvidia.com/gpu.memory": "40960",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/gpu.machine": "lrsweep-harness",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/mps.capable": "false",
    "nvidia.com/cuda.driver-version.full": "550.54.15",
    "nvidia.com/cuda.driver.major": "550",
    "nvidia.com/cuda.driver.minor": "54",
    "nvidia.com/cuda.driver.rev": "15",
    "nvidia.com/cuda.runtime-version.full": "12.4",
    "nvidia.com/cuda.runtime.major": "12",
    "nvidia.com/cuda.runtime.minor": "4",
}


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` expansion as in the Kubernetes API: unknown references stay as they are,
    and `$$` escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(replace, text)


class ConfigError(Exception):
    """An env source (ConfigMap/Secret key) is missing: CreateContainerConfigError."""


def _field_ref(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    match = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values: dict[str, Any] = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": (pod.get("status") or {}).get("hostIP", ""),
        "status.podIP": (pod.get("status") or {}).get("podIP", ""),
        "status.podIPs": (pod.get("status") or {}).get("podIP", ""),
    }
    if path not in values:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return str(values[path])


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """Effective requests: sum over containers, at least the largest init container."""
    total: dict[str, Fraction] = defaultdict(Fraction)
    for container in pod["spec"].get("containers") or []:
        for resource, quantity in (
            (container.get("resources") or {}).get("requests") or {}
        ).items():
            total[resource] += parse_quantity(quantity)
    for container in pod["spec"].get("initContainers") or []:
        for resource, quantity in (
            (container.get("resources") or {}).get("requests") or {}
        ).items():
            total[resource] = max(total[resource], parse_quantity(quantity))
    total["pods"] = Fraction(1)
    return dict(total)


@dataclasses.dataclass
class ContainerRun:
    spec: Obj
    init: bool
    log_path: Path
    message_path: Path
    restart_count: int = 0
    state: Obj = dataclasses.field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: Obj = dataclasses.field(default_factory=dict)
    process: asyncio.subprocess.Process | SimulatedTrainer | None = None
    started_at: float = 0.0

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def exit_code(self) -> int | None:
        terminated = self.state.get("terminated")
        return int(terminated["exitCode"]) if terminated else None

    def status(self) -> Obj:
        image = str(self.spec.get("image", ""))
        status: Obj = {
            "name": self.name,
            "image": image,
            "imageID": f"harness://{image}",
            "ready": self.running and not self.init,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
        }
        if self.process is not None:
            status["containerID"] = f"harness://{self.process.pid}"
        return status


class PodRunner:
    """Runs one pod's containers and reports its status."""

    def __init__(self, kubelet: Kubelet, pod: Obj, ip: str) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.ip = ip
        base = kubelet.state_dir / "pods" / self.uid
        self.init_containers = [
            self._container(spec, base, init=True)
            for spec in pod["spec"].get("initContainers") or []
        ]
        self.containers = [
            self._container(spec, base, init=False) for spec in pod["spec"]["containers"]
        ]
        self.phase = "Pending"
        self.initialized = not self.init_containers
        self.stop_requested = asyncio.Event()
        self.grace = 0.0
        self.evicted: str | None = None
        self.done = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def _container(spec: Obj, base: Path, *, init: bool) -> ContainerRun:
        directory = base / spec["name"]
        directory.mkdir(parents=True, exist_ok=True)
        return ContainerRun(spec, init, directory / "log", directory / "termination-log")

    def all_containers(self) -> list[ContainerRun]:
        return self.init_containers + self.containers

    def container(self, name: str) -> ContainerRun | None:
        return next((c for c in self.all_containers() if c.name == name), None)

    # Lifecycle

    async def run(self) -> None:
        try:
            self.publish()
            for container in self.init_containers:
                if not await self._supervise(container):
                    return
            self.initialized = True
            self.publish()
            await asyncio.gather(*(self._supervise(c) for c in self.containers))
        finally:
            self.done.set()
            self.publish()
            if self.stop_requested.is_set() and self.evicted is None:
                self.kubelet.api.finish_pod_deletion(self.kubelet.pods, self.pod)
            self.kubelet.reschedule()

    async def _supervise(self, container: ContainerRun) -> bool:
        """Run a container until it is done for good; True if it succeeded."""
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while True:
            started = await self._start(container)
            if started:
                self.kubelet.emit(
                    self.pod, "Normal", "Started", f"Started container {container.name}"
                )
                self.publish()
                await self._wait(container)
            if container.state.get("waiting", {}).get("reason") == "ErrImagePull":
                return False
            self.publish()
            code = container.exit_code
            if self.stop_requested.is_set() or self.kubelet.closing:
                return code == 0
            succeeded = code == 0
            restart = policy == "Always" or (policy == "OnFailure" and not succeeded)
            if container.init and succeeded:
                return True
            if not restart:
                return succeeded
            delay = min(self.kubelet.restart_backoff * 2**container.restart_count, 10.0)
            container.last_state = {"terminated": container.state["terminated"]}
            container.restart_count += 1
            container.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:g}s restarting failed container={container.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            self.publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), delay)
            if self.stop_requested.is_set():
                container.state = {"terminated": container.last_state["terminated"]}
                return False

    async def _start(self, container: ContainerRun) -> bool:
        while True:
            if self.stop_requested.is_set() or self.kubelet.closing:
                container.state = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": None,
                        "finishedAt": timestamp(),
                    }
                }
                return False
            runtime = self.kubelet.containers
            try:
                launch = runtime and runtime.command_for(self.kubelet, self.pod, container, self.ip)
                argv, env, cwd = launch or self.kubelet.command_for(
                    self.pod, container.spec, self.ip
                )
            except ConfigError as exc:
                container.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
                }
                self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), 0.5)
                continue
            except LookupError as exc:
                container.state = {"waiting": {"reason": "ErrImagePull", "message": str(exc)}}
                self.kubelet.emit(self.pod, "Warning", "Failed", str(exc))
                self.publish()
                return False
            break
        if selected(argv):  # run by the kubelet itself: no process (tests/harness/simulated.py)
            container.message_path.write_bytes(b"")
            process = await SimulatedTrainer.start(env, container.message_path, container.log_path)
            container.process = process
            container.started_at = asyncio.get_running_loop().time()
            container.state = {"running": {"startedAt": timestamp()}}
            return True
        executable = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
        if executable is None or not os.access(executable, os.X_OK):
            container.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": f'failed to create containerd task: exec: "{argv[0]}": executable '
                    "file not found in $PATH: unknown",
                    "startedAt": timestamp(),
                    "finishedAt": timestamp(),
                }
            }
            return False
        container.message_path.write_bytes(b"")
        if container.restart_count and container.log_path.exists():
            container.log_path.replace(container.log_path.with_name("log.previous"))
        path = container.spec.get("terminationMessagePath") or "/dev/termination-log"
        wrapped = [executable, *argv[1:]]
        if not launch:  # a real container has its termination-message file mounted
            wrapped = self.kubelet.isolate(wrapped, container.message_path, path)
        log: IO[bytes]
        with container.log_path.open("ab") as log:
            container.process = await asyncio.create_subprocess_exec(
                *wrapped,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        container.started_at = asyncio.get_running_loop().time()
        container.state = {"running": {"startedAt": timestamp()}}
        self.kubelet.groups.add(container.process.pid)
        return True

    async def _wait(self, container: ContainerRun) -> None:
        assert container.process is not None
        process = container.process
        code = await process.wait()
        # The container is over when its main process is: what it left running in its
        # process group goes too, as a container's PID namespace takes its processes along.
        await self.kubelet.end_groups({process.pid} & self.kubelet.groups, grace=0.0)
        if self.kubelet.containers is not None:
            await self.kubelet.containers.remove(self.pod, container)
        if code < 0:
            code = 128 - code
        message = self.kubelet.read_message(container)
        if (
            not message
            and code != 0
            and (container.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError")
        ):
            message = _log_tail(container.log_path)
        terminated: Obj = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": container.state.get("running", {}).get("startedAt"),
            "finishedAt": timestamp(),
            "containerID": f"harness://{process.pid}",
        }
        if message:
            terminated["message"] = message
        container.state = {"terminated": terminated}

    def request_stop(self, grace: float) -> None:
        """Graceful termination: SIGTERM now, SIGKILL once the grace period is over."""
        if self.stop_requested.is_set():
            return
        self.grace = grace
        self.stop_requested.set()
        for container in self.all_containers():
            if container.running:
                self.kubelet.emit(
                    self.pod, "Normal", "Killing", f"Stopping container {container.name}"
                )
        asyncio.get_running_loop().create_task(self._terminate(grace))

    async def _terminate(self, grace: float) -> None:
        processes = [
            c.process for c in self.all_containers() if c.process is not None and c.running
        ]
        for process in processes:
            _signal(process, signal.SIGTERM)
        if processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(p.wait() for p in processes)), max(grace, 0.0)
                )
        for process in processes:
            _signal(process, signal.SIGKILL)

    def evict(self, message: str) -> None:
        self.evicted = message
        self.stop_requested.set()
        for container in self.all_containers():
            if container.process is not None and container.running:
                _signal(container.process, signal.SIGKILL)

    # Status

    def publish(self) -> None:
        # Read only below its top level (the runner's pod too): the status is a copy.
        current = self.kubelet.api.view(self.kubelet.pods, self.namespace, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            return
        self.pod = current
        status = copy.deepcopy(current.get("status") or {})
        phase = self._phase()
        status.update(
            {
                "phase": phase,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "startTime": status.get("startTime") or timestamp(),
                "containerStatuses": [c.status() for c in self.containers],
            }
        )
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        ready = phase == "Running" and all(c.running for c in self.containers)
        not_ready_reason = (
            "PodCompleted" if phase in ("Succeeded", "Failed") else ("ContainersNotReady")
        )
        conditions: dict[str, tuple[bool, str | None, str | None]] = {
            "PodReadyToStartContainers": (True, None, None),
            "Initialized": (
                self.initialized,
                None if self.initialized else "ContainersNotInitialized",
                None,
            ),
            "Ready": (ready, None if ready else not_ready_reason, None),
            "ContainersReady": (ready, None if ready else not_ready_reason, None),
            "PodScheduled": (True, None, None),
        }
        if self.evicted is not None:
            status["reason"] = "Evicted"
            status["message"] = self.evicted
            conditions["DisruptionTarget"] = (True, "TerminationByKubelet", self.evicted)
        status["conditions"] = merge_conditions(status.get("conditions") or [], conditions)
        current["status"] = status
        self.kubelet.api.update_status(self.kubelet.pods, current)

    def _phase(self) -> str:
        if self.evicted is not None:
            return "Failed"
        containers = self.containers
        if not self.initialized:
            failed_init = [c for c in self.init_containers if c.exit_code not in (None, 0)]
            if failed_init and (
                self.pod["spec"].get("restartPolicy") == "Never"
                or (self.stop_requested.is_set() and self.done.is_set())
            ):
                return "Failed"
            return "Pending"
        if any(c.running for c in containers):
            return "Running"
        codes = [c.exit_code for c in containers]
        if any(code is None for code in codes):
            started = any(c.restart_count or c.last_state for c in containers)
            return "Running" if started else "Pending"
        policy = self.pod["spec"].get("restartPolicy", "Always")
        finished = (
            self.done.is_set()
            or self.stop_requested.is_set()
            or policy == "Never"
            or (policy == "OnFailure" and all(code == 0 for code in codes))
        )
        if not finished:
            return "Running"
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"


def merge_conditions(
    existing: list[Obj], wanted: Mapping[str, tuple[bool, str | None, str | None]]
) -> list[Obj]:
    """Set conditions, keeping `lastTransitionTime` unless the status flips."""
    before = {c["type"]: c for c in existing}
    result = [c for c in existing if c["type"] not in wanted]
    for kind, (value, reason, message) in wanted.items():
        status = "True" if value else "False"
        old = before.get(kind)
        condition: Obj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": old["lastTransitionTime"]
            if old and old.get("status") == status
            else timestamp(),
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        result.append(condition)
    return result


def _signal(process: asyncio.subprocess.Process | SimulatedTrainer, sig: signal.Signals) -> None:
    if isinstance(process, SimulatedTrainer):
        process.send_signal(sig)
    elif process.returncode is None:
        _signal_group(process.pid, sig)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _live_groups(pgids: set[int]) -> set[int]:
    """Those of the process groups that still have a live member (zombies are not: nobody
    may be reaping the orphans), read from /proc."""
    if not pgids:
        return set()
    live = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) in pgids and state not in ("Z", "X"):
            live.add(int(pgrp))
    return live


async def _wait_for_groups(pgids: set[int], timeout: float) -> bool:
    """Wait until no process of these groups is alive; False if some still are."""
    deadline = asyncio.get_running_loop().time() + timeout
    while _live_groups(pgids):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _log_tail(path: Path, lines: int = 80, limit: int = 2048) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    tail = b"\n".join(data.splitlines()[-lines:])[-limit:]
    return tail.decode(errors="replace")


def isolation_available(state_dir: Path) -> bool:
    """Whether a private mount namespace with a bind mount works here (root + unshare)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return False
    source = state_dir / "probe-source"
    target = state_dir / "probe-target"
    source.write_text("")
    target.write_text("")
    try:
        result = subprocess.run(
            [
                unshare,
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                _MOUNT_SCRIPT,
                "probe",
                str(source),
                str(target),
                "/bin/sh",
                "-c",
                f"echo ok > {target}",
            ],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and source.read_text() == "ok\n" and target.read_text() == ""


# Kubelets started in this process so far: each takes its own block of pod addresses.
_kubelets = itertools.count()


def first_pod_address() -> int:
    """Where a new kubelet's pod addresses start, as a number below 127.0.0.0/8: each
    pytest-xdist worker (PYTEST_XDIST_WORKER=gwN) has 16 blocks 127.B.0.0/16 of its own, and
    each kubelet in a process the next of them. Pods of two workers' harnesses sharing an
    address would have their trainers contend for one IP and metrics port, and one worker's
    operator would talk to the other's trainers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    n = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    block = (n * 16 + next(_kubelets) % 16) % 256
    return (block << 16) + 2


class Kubelet:
    def __init__(
        self,
        api: Api,
        *,
        node: NodeConfig,
        images: Mapping[str, Sequence[str]],
        state_dir: Path,
        workdir: Path,
        server_port: int,
        restart_backoff: float = 0.2,
        isolation: bool | None = None,
        containers: ContainerRuntime | None = None,
    ) -> None:
        self.api = api
        self.containers = containers  # the images whose containers run as real containers
        self.node = node
        self.images = {key: list(value) for key, value in images.items()}
        self.state_dir = state_dir
        self.workdir = workdir
        self.server_port = server_port
        self.restart_backoff = restart_backoff
        self.isolation = isolation_available(state_dir) if isolation is None else isolation
        if not self.isolation:
            logger.warning(
                "no private mount namespaces (needs root and unshare): all pods share their "
                "terminationMessagePath files"
            )
        self.runners: dict[str, PodRunner] = {}
        # Each container's process group (its main process leads it): what a stop ends.
        self.groups: set[int] = set()
        self.closing = False  # stopping: no container starts or restarts any more
        self.site_dir = state_dir / "python"
        self._next_ip = first_pod_address()
        self._task: asyncio.Task[None] | None = None
        self._watchers: list[Watcher] = []
        self._wake = asyncio.Event()
        self._pending_messages: dict[str, str] = {}

    @property
    def pods(self) -> ResourceType:
        rtype = self.api.registry.lookup("", "v1", "pods")
        assert rtype is not None
        return rtype

    @property
    def nodes(self) -> ResourceType:
        rtype = self.api.registry.lookup("", "v1", "nodes")
        assert rtype is not None
        return rtype

    async def start(self) -> None:
        self.site_dir.mkdir(parents=True, exist_ok=True)
        (self.site_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        capacity = self.node.capacity()
        labels = self.node.node_labels()
        self.api.create(
            self.nodes,
            None,
            {
                "metadata": {"name": self.node.name, "labels": labels},
                "spec": {},
            },
        )
        node = self.api.get(self.nodes, "", self.node.name)
        node["status"] = {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": merge_conditions([], {"Ready": (True, "KubeletReady", None)}),
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node.name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.0-lrsweep-harness",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "harness://local",
            },
        }
        self.api.update_status(self.nodes, node)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """End every container: SIGTERM to its process group, SIGKILL to what is left of it
        after 2 s, and wait until none of their processes is alive."""
        self.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for watcher in self._watchers:
            self.api.store.unsubscribe(watcher)
        await self.end_groups(set(self.groups), grace=2.0)
        for runner in self.runners.values():
            if runner.task is not None:
                runner.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner.task
        # A container whose start was under way meanwhile.
        await self.end_groups(set(self.groups), grace=0.0)
        if self.containers is not None:
            await self.containers.stop()

    async def end_groups(self, pgids: set[int], grace: float) -> None:
        """SIGTERM these process groups, SIGKILL them `grace` seconds later (at once with
        none), and wait up to 10 s until none of their processes is alive."""
        if grace > 0:
            for pgid in _live_groups(pgids):
                _signal_group(pgid, signal.SIGTERM)
            await _wait_for_groups(pgids, grace)
        for pgid in _live_groups(pgids):
            _signal_group(pgid, signal.SIGKILL)
        if not await _wait_for_groups(pgids, 10.0):
            logger.warning("processes of groups %s outlived SIGKILL", sorted(_live_groups(pgids)))
        self.groups.difference_update(pgids)

    def reschedule(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        pods, _ = self.api.store.subscribe(self.pods.storage_key, None, droppable=False)
        nodes, _ = self.api.store.subscribe(self.nodes.storage_key, None, droppable=False)
        self._watchers = [pods, nodes]
        drains = [asyncio.ensure_future(self._drain(watcher)) for watcher in self._watchers]
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                self._sync()
                # A pass looks at every pod: with thousands of them, passes are spaced to
                # take a fifth of the time at most (controllers.PACING).
                await asyncio.sleep(PACING * (loop.time() - started))
                await self._wake.wait()
                self._wake.clear()
        finally:
            for drain in drains:
                drain.cancel()

    async def _drain(self, watcher: Watcher) -> None:
        """Turn store events into wake-ups; a force-deleted pod's processes die at once."""
        while True:
            event = await watcher.queue.get()
            if (
                event is not None
                and event.type == "DELETED"
                and watcher.storage_key == (self.pods.storage_key)
            ):
                runner = self.runners.get(event.object["metadata"]["uid"])
                if runner is not None and not runner.done.is_set():
                    runner.request_stop(0)
            self._wake.set()

    def _sync(self) -> None:
        """Level-triggered: look at every pod, schedule, start, or stop as needed."""
        self._schedule()
        for pod in self.api.scan(self.pods, None):  # read only
            meta, spec = pod["metadata"], pod["spec"]
            if spec.get("nodeName") != self.node.name:
                continue
            runner = self.runners.get(meta["uid"])
            if meta.get("deletionTimestamp"):
                if runner is None:
                    self.api.finish_pod_deletion(self.pods, pod)
                elif runner.done.is_set():
                    if runner.evicted is not None or not runner.stop_requested.is_set():
                        self.api.finish_pod_deletion(self.pods, pod)
                else:
                    runner.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0))
                continue
            if runner is None and (pod.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                runner = PodRunner(
                    self, self.api.as_version(self.pods, copy.deepcopy(pod)), self._allocate_ip()
                )
                self.runners[meta["uid"]] = runner
                runner.task = asyncio.get_running_loop().create_task(runner.run())

    def _allocate_ip(self) -> str:
        while True:
            n = self._next_ip
            self._next_ip += 1
            octets = ((n >> 16) & 255, (n >> 8) & 255, n & 255)
            if octets[2] not in (0, 255):
                return "127.{}.{}.{}".format(*octets)

    # Scheduling

    def _schedule(self) -> None:
        node = self.api.find(self.nodes, "", self.node.name)
        if node is None:
            return
        allocatable = {
            resource: parse_quantity(quantity)
            for resource, quantity in (node.get("status", {}).get("allocatable") or {}).items()
        }
        node_labels = node["metadata"].get("labels") or {}
        pods = self.api.scan(self.pods, None)  # read only: a pod to bind is copied
        used: dict[str, Fraction] = defaultdict(Fraction)
        for pod in pods:
            if pod["spec"].get("nodeName") == self.node.name and pod.get("status", {}).get(
                "phase"
            ) not in ("Succeeded", "Failed"):
                for resource, quantity in pod_requests(pod).items():
                    used[resource] += quantity
        pending = [
            p
            for p in pods
            if not p["spec"].get("nodeName")
            and not p["metadata"].get("deletionTimestamp")
            and p["spec"].get("schedulerName", "default-scheduler") == "default-scheduler"
        ]
        pending.sort(
            key=lambda p: (
                p["metadata"]["creationTimestamp"],
                int(p["metadata"]["resourceVersion"]),
            )
        )
        for stored in pending:
            pod = self.api.as_version(self.pods, copy.deepcopy(stored))
            requests = pod_requests(pod)
            reasons = []
            selector = pod["spec"].get("nodeSelector") or {}
            if any(node_labels.get(key) != value for key, value in selector.items()):
                reasons.append("node(s) didn't match Pod's node affinity/selector")
            for resource, quantity in sorted(requests.items()):
                if quantity and used[resource] + quantity > allocatable.get(resource, Fraction(0)):
                    reasons.append(
                        "Too many pods" if resource == "pods" else f"Insufficient {resource}"
                    )
            if reasons:
                self._mark_unschedulable(pod, reasons)
                continue
            for resource, quantity in requests.items():
                used[resource] += quantity
            pod["spec"]["nodeName"] = self.node.name
            pod["status"]["conditions"] = merge_conditions(
                pod["status"].get("conditions") or [], {"PodScheduled": (True, None, None)}
            )
            status = pod["status"]
            bound = self.api.write_internal(self.pods, pod)
            bound["status"] = status
            self.api.update_status(self.pods, bound)
            self.emit(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {pod['metadata']['namespace']}/"
                f"{pod['metadata']['name']} to {self.node.name}",
                "default-scheduler",
            )

    def _mark_unschedulable(self, pod: Obj, reasons: list[str]) -> None:
        message = (
            f"0/1 nodes are available: {', '.join('1 ' + r for r in reasons)}. preemption: 0/1 "
            "nodes are available: 1 No preemption victims found for incoming pod."
        )
        conditions = pod["status"].get("conditions") or []
        scheduled = next((c for c in conditions if c["type"] == "PodScheduled"), None)
        if scheduled and scheduled.get("message") == message:
            return
        pod["status"]["conditions"] = merge_conditions(
            conditions, {"PodScheduled": (False, "Unschedulable", message)}
        )
        self.api.update_status(self.pods, pod)
        self.emit(pod, "Warning", "FailedScheduling", message, "default-scheduler")

    # Containers

    def command_for(
        self, pod: Obj, container: Obj, ip: str
    ) -> tuple[list[str], dict[str, str], str]:
        pod = copy.deepcopy(pod)
        pod.setdefault("status", {})["podIP"] = ip
        pod["status"]["hostIP"] = "127.0.0.1"
        own = self._container_env(pod, container)
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        if not command:
            entrypoint = self.entrypoint(str(container.get("image", "")))
            if entrypoint is None:
                image = container.get("image")
                # containerd's words for an image its registry does not have: the test
                # cluster pulls none, so every image without an entrypoint is one.
                raise LookupError(
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed '
                    f'to pull and unpack image "{image}": {image}: not found (the test cluster '
                    "pulls no images: give the container a command, or the harness an "
                    "entrypoint for this image, Harness(images=...))"
                )
            command = entrypoint
        argv = [expand(part, own) for part in command + args]
        env = dict(os.environ)
        env.update(
            {
                "HOSTNAME": pod["metadata"]["name"],
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.server_port),
                POD_IP_VARIABLE: ip,
            }
        )
        # The service account's credentials: a kubeconfig (the harness speaks plain HTTP,
        # which in-cluster config cannot), never the kubeconfig the harness was started with.
        env.pop("KUBECONFIG", None)
        # A simulated trainer is no process and calls no API: it needs no credentials (a
        # kubeconfig file for each of thousands of pods was a good part of their start).
        if not selected(argv) and self._automounts_token(pod):
            env["KUBECONFIG"] = str(self._service_account_kubeconfig(pod))
        env.update(own)
        # The images have their Python environment's scripts (torchrun, ...) on PATH.
        env["PATH"] = os.pathsep.join(
            filter(None, [str(Path(sys.executable).parent), env.get("PATH")])
        )
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(self.site_dir), env.get("PYTHONPATH")])
        )
        cwd = container.get("workingDir") or str(self.workdir)
        if not Path(cwd).is_dir():
            raise ConfigError(f"workingDir {cwd!r} does not exist on this machine")
        return argv, env, cwd

    def _automounts_token(self, pod: Obj) -> bool:
        """`automountServiceAccountToken`: the pod's, else its service account's, else true."""
        own = pod["spec"].get("automountServiceAccountToken")
        if own is not None:
            return bool(own)
        accounts = self.api.registry.lookup("", "v1", "serviceaccounts")
        assert accounts is not None
        account = self.api.find(
            accounts, pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName", "default")
        )
        return bool((account or {}).get("automountServiceAccountToken", True))

    def _service_account_kubeconfig(self, pod: Obj) -> Path:
        """The pod's credentials: a kubeconfig for the API server, in the pod's namespace."""
        # Beside the pod's container folders: no container name holds a dot.
        path: Path = (
            self.state_dir / "pods" / str(pod["metadata"]["uid"]) / "service-account.kubeconfig"
        )
        if not path.exists():
            namespace = pod["metadata"]["namespace"]
            account = pod["spec"].get("serviceAccountName", "default")
            path.parent.mkdir(parents=True, exist_ok=True)
            document = kubeconfig(
                f"http://127.0.0.1:{self.server_port}",
                namespace=namespace,
                token=f"system:serviceaccount:{namespace}:{account}",
            )
            path.write_text(yaml.safe_dump(document))
        return path

    def entrypoint(self, image: str) -> list[str] | None:
        return next((list(self.images[k]) for k in image_keys(image) if k in self.images), None)

    def _container_env(self, pod: Obj, container: Obj) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, ref_key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
                ref = source.get(ref_key)
                if ref is None:
                    continue
                data = self._env_source(kind, namespace, ref["name"], ref.get("optional", False))
                env.update({prefix + key: value for key, value in data.items()})
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item or "valueFrom" not in item:
                env[name] = expand(str(item.get("value", "")), env)
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                env[name] = _field_ref(pod, source["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in source or "secretKeyRef" in source:
                kind = "configmaps" if "configMapKeyRef" in source else "secrets"
                ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
                data = self._env_source(kind, namespace, ref["name"], ref.get("optional", False))
                if ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise ConfigError(
                        f"couldn't find key {ref['key']} in {kind[:-1]} {namespace}/{ref['name']}"
                    )
            elif "resourceFieldRef" in source:
                env[name] = self._resource_field(container, source["resourceFieldRef"])
        return env

    def _env_source(self, kind: str, namespace: str, name: str, optional: bool) -> dict[str, str]:
        rtype = self.api.registry.lookup("", "v1", kind)
        assert rtype is not None
        obj = self.api.find(rtype, namespace, name)
        if obj is None:
            if optional:
                return {}
            raise ConfigError(f'{kind[:-1]} "{name}" not found')
        if kind == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()} | {
                k: str(v) for k, v in (obj.get("stringData") or {}).items()
            }
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    def _resource_field(self, container: Obj, ref: Obj) -> str:
        section, _, resource = ref["resource"].partition(".")
        value = ((container.get("resources") or {}).get(section) or {}).get(resource)
        if value is None:
            value = self.node.cpu if resource == "cpu" else self.node.memory
        divisor = parse_quantity(ref.get("divisor", "1"))
        return str(math.ceil(parse_quantity(value) / divisor))

    def isolate(self, argv: list[str], message_file: Path, path: str) -> list[str]:
        if not self.isolation:
            self._pending_messages[str(message_file)] = path
            target = Path(path)
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"")
            return argv
        # The bind mount needs a mount point on the host: an empty file, left in place
        # (removing it could pull it from under another harness's running pods).
        target = Path(path)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        unshare = shutil.which("unshare") or "unshare"
        return [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            _MOUNT_SCRIPT,
            "harness-mount",
            str(message_file),
            str(target),
            *argv,
        ]

    def read_message(self, container: ContainerRun) -> str:
        source = container.message_path
        shared = self._pending_messages.pop(str(source), None)
        if shared is not None:
            source = Path(shared)
        try:
            with source.open("rb") as handle:
                data = handle.read(MESSAGE_LIMIT)
        except OSError:
            return ""
        return data.decode(errors="replace")

    def emit(
        self, pod: Obj, kind: str, reason: str, message: str, component: str = "kubelet"
    ) -> None:
        self.api.record_event(pod, kind, reason, message, component, host=self.node.name)

    # Faults and logs

    def evict(self, namespace: str, name: str, message: str) -> None:
        pod = self.api.find(self.pods, namespace, name)
        runner = self.runners.get(pod["metadata"]["uid"]) if pod else None
        if runner is None or runner.done.is_set():
            raise ApiError(409, "Conflict", f'pod "{name}" is not running on this node')
        runner.evict(message)
        self.emit(runner.pod, "Warning", "Evicted", message)

    def log_file(self, namespace: str, name: str, container: str) -> tuple[PodRunner, Path] | None:
        pod = self.api.find(self.pods, namespace, name)
        runner = self.runners.get(pod["metadata"]["uid"]) if pod else None
        if runner is None:
            return None
        run = runner.container(container)
        return (runner, run.log_path) if run is not None else None


def image_keys(image: str) -> tuple[str, ...]:
    """The keys an image is looked up by: full reference, without digest, without tag, last
    path element."""
    without_digest = image.split("@", 1)[0]
    repository = re.sub(r":[^/:]+$", "", without_digest)
    return (image, without_digest, repository, repository.rsplit("/", 1)[-1])


def temporary_state_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lrsweep-harness-"))
