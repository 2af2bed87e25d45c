"""Running the operator against the test cluster (or LRSWEEP_E2E_KUBECONFIG) in tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lrsweep.runtime.local import free_port
from tests.harness.pytest_plugin import KubeCluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd.yaml"


class Operator:
    """`lrsweep operator` as a process, watching one namespace (or every one, `clusterwide`);
    restartable, killable. `settings`: more LRSWEEP_* variables, as the chart's values set."""

    def __init__(
        self,
        cluster: KubeCluster,
        namespace: str,
        log: Path,
        *,
        clusterwide: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.clusterwide = clusterwide
        self.settings = dict(settings or {})
        self.log_path = log
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "LRSWEEP_RECONCILE_INTERVAL": "0.5",
            "LRSWEEP_STOP_GRACE_SECONDS": "2",
            "LRSWEEP_GATE_TIMEOUT": "60",
            "LRSWEEP_PROGRESS_WRITE_INTERVAL": "2",
            "LRSWEEP_METRICS_PORT": str(self.metrics_port),
            "LRSWEEP_HEALTH_PORT": str(self.health_port),
            **self.settings,
        }
        if self.clusterwide:
            env["LRSWEEP_CLUSTERWIDE"] = "true"
            env.pop("LRSWEEP_NAMESPACES", None)
        else:
            env["LRSWEEP_NAMESPACES"] = self.namespace
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lrsweep.cli", "operator"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def install_crd(cluster: KubeCluster) -> str:
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/lrsweeps.lrsweep.dev", "--timeout=30s"
    )
    return "lrsweeps.lrsweep.dev"


def apply(cluster: KubeCluster, namespace: str, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def get_sweep(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "lrs", name, "-n", namespace, "-o", "json").stdout
    sweep: dict[str, Any] = json.loads(out)
    return sweep


def wait_phase(
    cluster: KubeCluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        # check=False: under injected API faults a user's kubectl fails too, and retries.
        done = cluster.kubectl("get", "lrs", name, "-n", namespace, "-o", "json", check=False)
        if done.returncode != 0:
            return None
        sweep: dict[str, Any] = json.loads(done.stdout)
        return sweep if (sweep.get("status") or {}).get("phase") in phases else None

    return wait_for(
        probe,
        timeout=timeout,
        interval=0.5,
        message=lambda: f"{name} to reach {phases}: {get_sweep(cluster, namespace, name)}",
    )
