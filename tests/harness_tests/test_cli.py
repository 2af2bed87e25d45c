"""`python -m tests.harness --kubeconfig PATH` in the foreground.

Covers: the kubeconfig written once the server answers, usable by kubectl; SIGTERM stopping
the pod processes it started and exiting 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.pytest_plugin import REPO, find_kubectl, read_when_present, wait_for


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.harness",
            "--kubeconfig",
            str(kubeconfig),
            "--state-dir",
            str(tmp_path / "state"),
            "--gpus",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: kubeconfig.exists() or process.poll() is not None, message="the kubeconfig"
        )
        yield process, kubeconfig
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [find_kubectl(), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_written_kubeconfig_serves_kubectl(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    _, kubeconfig = served
    capacity = json.loads(_kubectl(kubeconfig, "get", "nodes", "-o", "json"))["items"][0]
    assert capacity["status"]["capacity"]["nvidia.com/gpu"] == "1"


def test_sigterm_stops_pods_and_exits(
    served: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    process, kubeconfig = served
    pid_file = tmp_path / "pid"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "long"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", f"echo $$$$ > {pid_file}; exec sleep 300"],
                }
            ]
        },
    }
    _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod))
    pid = int(wait_for(lambda: read_when_present(pid_file), message="the pod process"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
