"""The operator image (Dockerfile target `operator`), run with podman.

Covers: it runs as the numeric non-root user 65532; its entrypoint is `lrsweep operator`
(`--help` answers for it); it carries no torch; started against the test cluster it serves
kopf's /healthz and the operator's /metrics.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrsweep.runtime.local import free_port
from tests.e2e.cluster import install_crd
from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.images.build import Images
from tests.images.containers import Container, podman_run

pytestmark = pytest.mark.images


def test_runs_as_the_numeric_non_root_user(lrsweep_images: Images) -> None:
    done = podman_run(lrsweep_images.operator.name, "-u", entrypoint="id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "65532"


def test_its_entrypoint_is_lrsweep_operator(lrsweep_images: Images) -> None:
    done = podman_run(lrsweep_images.operator.name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: lrsweep operator"), done.stdout


def test_carries_no_torch(lrsweep_images: Images) -> None:
    probe = "import importlib.util; print(importlib.util.find_spec('torch') is None)"
    done = podman_run(lrsweep_images.operator.name, "-c", probe, entrypoint="python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except OSError:
        return None


@pytest.fixture
def operator_container(
    lrsweep_images: Images, kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> Iterator[Container]:
    install_crd(kube_cluster)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube_cluster.kubeconfig.read_text())
    kubeconfig.chmod(0o644)  # the image's user reads it
    container = Container(
        lrsweep_images.operator.name,
        env={
            "KUBECONFIG": "/etc/lrsweep/kubeconfig",
            "LRSWEEP_NAMESPACES": kube_namespace,
            "LRSWEEP_METRICS_PORT": str(free_port()),
            "LRSWEEP_HEALTH_PORT": str(free_port()),
        },
        volumes=[(kubeconfig, "/etc/lrsweep/kubeconfig:ro")],
    )
    container.start()
    yield container
    container.remove()


def test_against_the_test_cluster_it_serves_healthz_and_metrics(
    operator_container: Container,
) -> None:
    env = operator_container.env
    health = f"http://127.0.0.1:{env['LRSWEEP_HEALTH_PORT']}/healthz"
    metrics = f"http://127.0.0.1:{env['LRSWEEP_METRICS_PORT']}/metrics"
    answered = wait_for(
        lambda: _get(health),
        timeout=60,
        message=lambda: f"{health} to answer; the operator's log:\n{operator_container.logs()}",
    )
    assert answered[0] == 200
    status, text = wait_for(lambda: _get(metrics), timeout=30, message=f"{metrics} to answer")
    assert status == 200
    assert "# TYPE lrsweep_reconcile_duration_seconds histogram" in text, text
    assert "Traceback" not in operator_container.logs()
