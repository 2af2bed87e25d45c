"""Fixtures of the end-to-end tests: the LRSweep CRD, a running operator and the local
quickstart sweep."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Operator, install_crd
from tests.e2e.commands import ROOT, lrsweep
from tests.harness.pytest_plugin import KubeCluster

MULTI_GPU = ROOT / "manifests" / "examples" / "multi-gpu.yaml"
QUICKSTART = ROOT / "manifests" / "examples" / "quickstart.yaml"


@pytest.fixture(scope="session")
def crd(kube_cluster: KubeCluster) -> str:
    return install_crd(kube_cluster)


@pytest.fixture
def operator(
    kube_cluster: KubeCluster, kube_namespace: str, crd: str, tmp_path: Path
) -> Iterator[Operator]:
    """`lrsweep operator` watching the test's namespace; its log must hold no traceback."""
    op = Operator(kube_cluster, kube_namespace, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.log(), op.log()[-5000:]


@dataclass(frozen=True)
class LocalRun:
    """A finished `lrsweep run`: its output and the directory it wrote."""

    done: subprocess.CompletedProcess[str]
    out: Path

    def result(self) -> dict[str, Any]:
        """result.json; fails the test with the run's output unless the run exited 0."""
        assert self.done.returncode == 0, self.done.stdout + self.done.stderr
        result: dict[str, Any] = json.loads((self.out / "result.json").read_text())
        return result


@pytest.fixture(scope="session")
def local_quickstart(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    """`lrsweep run` of the quickstart, once per session: its trials train a real torch model
    (a minute or more), and the local and operator tests both compare against it."""
    out = tmp_path_factory.mktemp("local-quickstart")
    return LocalRun(lrsweep("run", str(QUICKSTART), "--out", str(out), timeout=600), out)


@pytest.fixture(scope="session")
def local_multi_gpu(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    """`lrsweep run` of the multi-GPU example (torchrun, two processes a trial, on the CPU
    here), once per session, for the local and operator tests to compare against."""
    out = tmp_path_factory.mktemp("local-multi-gpu")
    return LocalRun(lrsweep("run", str(MULTI_GPU), "--out", str(out), timeout=600), out)
