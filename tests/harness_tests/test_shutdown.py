"""No pod process outlives the test cluster.

Covers: stopping a harness ends processes a pod's container started and that ignore SIGTERM
(its whole process group is killed, and waited for); a pytest session that used the
`kube_cluster` fixture leaves none of its pods' processes behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness.pytest_plugin import (
    REPO,
    TEST_HARNESS,
    KubeCluster,
    read_when_present,
    wait_for,
)
from tests.harness.threaded import ThreadedHarness
from tests.harness_tests.conftest import alive, kill_if_alive, sleeper_pod


def stubborn_pod(pid_file: Path) -> dict[str, Any]:
    """A pod whose container starts a child that ignores SIGTERM and writes its own pid
    (`$$$$`: `$$` once the kubelet has expanded the command)."""
    child = f'trap "" TERM; echo $$$$ > {pid_file}; exec sleep 300'
    return sleeper_pod("stubborn", f"sh -c '{child}' & wait")


def test_stopping_the_harness_kills_what_a_pod_left_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    harness = ThreadedHarness(state_dir=tmp_path / "state").start()
    try:
        cluster = KubeCluster(harness.kubeconfig_path, TEST_HARNESS, harness, tmp_path / "cache")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(stubborn_pod(pid_file)))
        pid = int(wait_for(lambda: read_when_present(pid_file), message="the child's pid"))
    finally:
        harness.stop()
    try:
        assert not alive(pid)
    finally:
        kill_if_alive(pid)


SESSION = """
import json
from pathlib import Path

from tests.harness.pytest_plugin import read_when_present, wait_for


def test_starts_a_stubborn_pod(kube_cluster):
    pod = {pod}
    kube_cluster.kubectl("apply", "-n", "default", "-f", "-", input=json.dumps(pod))
    wait_for(lambda: read_when_present(Path({pid_file!r})), message="the child's pid")
"""


def test_a_pytest_session_leaves_no_pod_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    test_file = tmp_path / "test_session.py"
    test_file.write_text(SESSION.format(pod=stubborn_pod(pid_file), pid_file=str(pid_file)))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "LRSWEEP_E2E_KUBECONFIG"}
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "tests.harness.pytest_plugin",
            "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
            "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "base"), str(test_file),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    pid = int(pid_file.read_text())
    try:
        assert not alive(pid)
    finally:
        kill_if_alive(pid)
