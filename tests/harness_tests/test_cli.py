"""`python -m tests.harness --kubeconfig PATH` in the foreground.

Covers: the kubeconfig written once the server answers, usable by kubectl; SIGTERM stopping
the pod processes it started and exiting 0; with `--gpus N`, the node labelled as NVIDIA's
GPU feature discovery labels GPU nodes, so that the GPU example's nodeSelector matches it;
`--container IMAGE=LOCAL_IMAGE` naming the images whose pods run as podman containers.
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
import yaml

from tests.harness.__main__ import parse_args
from tests.harness.pytest_plugin import REPO, find_kubectl, read_when_present, wait_for
from tests.harness_tests.conftest import sleeper_pod


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
            process.terminate()  # SIGTERM: the harness stops its pods' processes
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
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


def test_gpu_node_carries_gpu_feature_discovery_labels(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    _, kubeconfig = served
    node = json.loads(_kubectl(kubeconfig, "get", "nodes", "-o", "json"))["items"][0]
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.count"] == "1"  # --gpus 1
    assert labels["nvidia.com/gpu.product"]


def test_gpu_example_node_selector_matches_the_node(
    served: tuple[subprocess.Popen[str], Path],
) -> None:
    _, kubeconfig = served
    example = yaml.safe_load((REPO / "manifests" / "examples" / "gpu-cnn.yaml").read_text())
    trial = example["spec"]["trial"]["template"]["spec"]
    pod = sleeper_pod(
        "gpu-trial", nodeSelector=trial["nodeSelector"], tolerations=trial["tolerations"]
    )
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod))

    def scheduled() -> str:
        return _kubectl(kubeconfig, "get", "pod", "gpu-trial", "-o", "jsonpath={.spec.nodeName}")

    assert wait_for(scheduled, message="the GPU pod to be scheduled") == "harness-node"


def test_container_options_name_the_local_image_of_each_image() -> None:
    args = parse_args(
        ["--kubeconfig", "kc", "--container", "lrsweep-trainer=localhost/lrsweep-trainer:local"]
    )
    assert args.container == [("lrsweep-trainer", "localhost/lrsweep-trainer:local")]
    with pytest.raises(SystemExit):
        parse_args(["--kubeconfig", "kc", "--container", "lrsweep-trainer"])
