"""pytest fixtures for tests that need a Kubernetes cluster.

Register once in tests/conftest.py: `pytest_plugins = ["tests.harness.pytest_plugin"]`.

- `kube_cluster` (session): a `KubeCluster` with `.kubeconfig`, `.capabilities`,
  `.kubectl(...)` and `.client()`. It is the test harness, or the real cluster named by
  `LRSWEEP_E2E_KUBECONFIG` (then `.harness` is None and `.capabilities` says so).
- `kube_namespace` (function): a fresh namespace, deleted afterwards.
- `harness` (function): the `ThreadedHarness`; skips with a stated reason on a real cluster;
  resets faults and node capacity after the test.
- `harness_options` (session): keyword arguments for the harness; override it in a conftest.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.harness.images import LRSWEEP_IMAGES
from tests.harness.threaded import ThreadedHarness

E2E_KUBECONFIG = "LRSWEEP_E2E_KUBECONFIG"
REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".tools" / "bin" / "kubectl"
# Containers of these images that give no command run these entrypoints on the harness.
DEFAULT_IMAGES = LRSWEEP_IMAGES

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What the cluster under test can do beyond the Kubernetes API."""

    local_kubelet: bool
    """Pods run as processes of this machine: host commands work, pod IPs are loopback
    addresses reachable from the tests, and `python` in a command is this interpreter."""
    faults: bool
    """The fault-injection API (`harness.set_faults`, evictions on demand) is available."""


REAL_CLUSTER = Capabilities(local_kubelet=False, faults=False)
TEST_HARNESS = Capabilities(local_kubelet=True, faults=True)


def find_tool(name: str) -> str:
    """`.tools/bin/NAME` (from .ci/install-tools), else NAME on PATH."""
    local = KUBECTL.parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found: neither {local} nor {name} on PATH; "
            "run .ci/install-tools to install kubectl 1.33 and helm 4"
        )
    return found


def find_kubectl() -> str:
    """`.tools/bin/kubectl` (v1.33, from .ci/install-tools), else kubectl on PATH."""
    return find_tool("kubectl")


@dataclasses.dataclass
class KubeCluster:
    kubeconfig: Path
    capabilities: Capabilities
    harness: ThreadedHarness | None
    cache_dir: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; with check, a failure shows its stderr."""
        return self._run(
            "kubectl", ["--cache-dir", str(self.cache_dir), *args], input, check, timeout
        )

    def helm(
        self, *args: str, check: bool = True, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this cluster (its cache and config under `cache_dir`)."""
        return self._run("helm", list(args), None, check, timeout)

    def _run(
        self, tool: str, args: list[str], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        helm_home = self.cache_dir / "helm"
        result = subprocess.run(
            [find_tool(tool), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={
                **os.environ,
                **{
                    f"HELM_{kind}_HOME": str(helm_home / kind)
                    for kind in ("CACHE", "CONFIG", "DATA")
                },
            },
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def client(self) -> Any:
        """A new `kubernetes.client.ApiClient` for this cluster (close it when done)."""
        from kubernetes import config

        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)


def read_when_present(path: Path) -> str | None:
    """A file's stripped text once it exists and is not empty (a `wait_for` probe)."""
    if not path.exists():
        return None
    return path.read_text().strip() or None


@pytest.fixture(scope="session")
def harness_options() -> dict[str, Any]:
    """Keyword arguments of the session's `ThreadedHarness`; override to change them."""
    return {"images": DEFAULT_IMAGES}


@pytest.fixture(scope="session")
def kube_cluster(
    harness_options: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    cache_dir = tmp_path_factory.mktemp("kubectl-cache")
    real = os.environ.get(E2E_KUBECONFIG)
    if real:
        yield KubeCluster(Path(real), REAL_CLUSTER, None, cache_dir)
        return
    state_dir = tmp_path_factory.mktemp("harness")
    options = {"state_dir": state_dir, **harness_options}
    with ThreadedHarness(kubeconfig_path=state_dir / "kubeconfig", **options) as harness:
        yield KubeCluster(harness.kubeconfig_path, TEST_HARNESS, harness, cache_dir)


@pytest.fixture
def kube_namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture
def harness(kube_cluster: KubeCluster) -> Iterator[ThreadedHarness]:
    if kube_cluster.harness is None:
        pytest.skip(
            f"needs the test harness (fault injection, local kubelet); {E2E_KUBECONFIG} "
            "points at a real cluster"
        )
    threaded = kube_cluster.harness
    yield threaded
    threaded.reset_faults()
    threaded.reset_node_capacity()
