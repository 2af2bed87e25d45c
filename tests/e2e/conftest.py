"""Fixtures of the end-to-end tests: the LRSweep CRD and a running operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import Operator, install_crd
from tests.harness.pytest_plugin import KubeCluster


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
