"""Pods run by the kubelet stand-in (or a real kubelet, where the check allows it).

Covers: a pod exiting non-zero (phase Failed, exit code, reason, times, termination
message, `kubectl logs`); a pod exiting zero (Succeeded/Completed); two concurrent pods
each getting their own termination-message file; env with `$(VAR)` expansion, fieldRef and
configMapKeyRef; distinct loopback pod IPs reachable from the host; deletion sending SIGTERM
then SIGKILL after the grace period, then the object going away; a GPU pod left
Unschedulable and scheduled once the node gains a GPU; the node's capacity reset;
restartPolicy OnFailure restarting; an image entrypoint given to the harness; an image
without one left in ErrImagePull; the termination message read from the shared path when
mount namespaces are not available; a pod's default client config reaching the API server
in the pod's namespace (not the harness's own KUBECONFIG); no credentials with
automountServiceAccountToken false; two pods binding 0.0.0.0 on one port; processes a
container leaves behind ending with it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.pytest_plugin import KubeCluster, read_when_present, wait_for
from tests.harness.threaded import ThreadedHarness
from tests.harness_tests.conftest import ApiClient, CoreApi, alive, kill_if_alive, sleeper_pod

Core = CoreApi
TIMEOUT = 90.0  # a real cluster may pull busybox first


def _phase(core: Core, name: str, namespace: str, *phases: str) -> Any:
    def probe() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in phases else None

    return wait_for(probe, timeout=TIMEOUT, message=f"pod {name} to reach {phases}")


def _local(cluster: KubeCluster) -> None:
    if not cluster.capabilities.local_kubelet:
        pytest.skip("needs pods running as local processes (the test harness)")


def _gone(core: Core, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_failing_pod_reports_exit_code_message_and_logs(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str
) -> None:
    script = "echo starting; echo '{\"best\": 0.1}' > /dev/termination-log; exit 3"
    core.create_namespaced_pod(kube_namespace, sleeper_pod("fails", script))
    pod = _phase(core, "fails", kube_namespace, "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    assert terminated.reason == "Error"
    assert json.loads(terminated.message) == {"best": 0.1}
    assert terminated.started_at <= terminated.finished_at
    logs = kube_cluster.kubectl("logs", "fails", "-n", kube_namespace)
    assert logs.stdout == "starting\n"


def test_succeeding_pod_is_completed(core: Core, kube_namespace: str) -> None:
    core.create_namespaced_pod(kube_namespace, sleeper_pod("works", "exit 0"))
    pod = _phase(core, "works", kube_namespace, "Succeeded")
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"


def test_concurrent_pods_have_their_own_termination_message(
    core: Core, kube_namespace: str
) -> None:
    for name in ("first", "second"):
        script = f"echo {name} > /dev/termination-log; sleep 1; exit 0"
        core.create_namespaced_pod(kube_namespace, sleeper_pod(name, script))
    for name in ("first", "second"):
        pod = _phase(core, name, kube_namespace, "Succeeded")
        assert pod.status.container_statuses[0].state.terminated.message == f"{name}\n"


def test_env_expansion_and_references(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str
) -> None:
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "settings"}, "data": {"rate": "0.1"}}
    )
    pod = sleeper_pod("envs", "echo $(GREETING) $POD $NS $RATE $POD_IP")
    pod["spec"]["containers"][0]["env"] = [
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hello-$(WHO)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "RATE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "rate"}}},
    ]
    core.create_namespaced_pod(kube_namespace, pod)
    finished = _phase(core, "envs", kube_namespace, "Succeeded")
    logs = kube_cluster.kubectl("logs", "envs", "-n", kube_namespace).stdout
    assert logs.split() == ["hello-world", "envs", kube_namespace, "0.1", finished.status.pod_ip]


def test_pods_get_distinct_reachable_loopback_ips(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str
) -> None:
    _local(kube_cluster)
    server = (
        f"{sys.executable} -m http.server 18080 --bind $(POD_IP) "
        "--directory /nonexistent-dir-for-404s"
    )
    for name in ("web1", "web2"):
        pod = sleeper_pod(name, server)
        pod["spec"]["containers"][0]["env"] = [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        ]
        core.create_namespaced_pod(kube_namespace, pod)
    ips = [_phase(core, name, kube_namespace, "Running").status.pod_ip for name in ("web1", "web2")]
    assert len(set(ips)) == 2
    assert all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    for ip in ips:
        wait_for(functools.partial(_answers, ip, 18080), message=f"an HTTP answer from {ip}")


def _answers(ip: str, port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://{ip}:{port}/", timeout=1)
    except OSError as exc:
        return "404" in str(exc)
    return True


def test_pods_binding_the_wildcard_address_share_a_port(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, tmp_path: Path
) -> None:
    _local(kube_cluster)
    for name in ("any1", "any2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "who").write_text(name)
        server = (
            f"{sys.executable} -m http.server 18081 --bind 0.0.0.0 --directory {tmp_path / name}"
        )
        core.create_namespaced_pod(kube_namespace, sleeper_pod(name, server))
    for name in ("any1", "any2"):
        ip = _phase(core, name, kube_namespace, "Running").status.pod_ip

        def who(ip: str = ip) -> str | None:
            try:
                with urllib.request.urlopen(f"http://{ip}:18081/who", timeout=1) as answer:
                    return str(answer.read().decode())
            except OSError:
                return None

        # Each pod's own server answers at its IP.
        assert wait_for(who, message=f"an HTTP answer from {name}") == name


# What a pod's Kubernetes client does: in-cluster config, else the kubeconfig (KUBECONFIG).
CLIENT_SCRIPT = """
import os
from kubernetes import client, config
try:
    config.load_incluster_config()
except config.ConfigException:
    config.load_kube_config()
namespace = config.list_kube_config_contexts()[1]["context"]["namespace"]
pod = client.CoreV1Api().read_namespaced_pod(os.environ["HOSTNAME"], namespace)
print(namespace, pod.metadata.name)
"""


def test_pod_reaches_the_api_server_with_its_default_client_config(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local(kube_cluster)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/the-harness-own-kubeconfig")
    pod = sleeper_pod("client")
    pod["spec"]["containers"][0]["command"] = [sys.executable, "-c", CLIENT_SCRIPT]
    core.create_namespaced_pod(kube_namespace, pod)
    _phase(core, "client", kube_namespace, "Succeeded")
    logs = kube_cluster.kubectl("logs", "client", "-n", kube_namespace).stdout
    assert logs.split() == [kube_namespace, "client"]


def test_pod_without_token_automount_gets_no_credentials(
    core: Core, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/the-harness-own-kubeconfig")
    pod = sleeper_pod("nocreds", 'test -z "$KUBECONFIG"', automountServiceAccountToken=False)
    core.create_namespaced_pod(kube_namespace, pod)
    _phase(core, "nocreds", kube_namespace, "Succeeded")


def test_container_exit_ends_the_processes_it_left_running(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, tmp_path: Path
) -> None:
    _local(kube_cluster)
    pid_file = tmp_path / "left.pid"
    script = (
        f"sh -c 'echo $$$$ > {pid_file}; exec sleep 300' & "
        f"while [ ! -s {pid_file} ]; do sleep 0.05; done; exit 0"
    )
    core.create_namespaced_pod(kube_namespace, sleeper_pod("leaves", script))
    _phase(core, "leaves", kube_namespace, "Succeeded")
    pid = int(pid_file.read_text())
    try:
        wait_for(lambda: not alive(pid), timeout=10, message="the left-over process to end")
    finally:
        kill_if_alive(pid)


def test_deletion_sends_sigterm_then_the_pod_goes(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, tmp_path: Path
) -> None:
    _local(kube_cluster)
    marker, ready = tmp_path / "terminated", tmp_path / "ready"
    script = (
        f"trap 'echo term > {marker}; exit 0' TERM; echo yes > {ready}; "
        "while true; do sleep 0.1; done"
    )
    core.create_namespaced_pod(kube_namespace, sleeper_pod("graceful", script))
    wait_for(lambda: read_when_present(ready), message="the trap to be set")
    core.delete_namespaced_pod("graceful", kube_namespace)
    wait_for(lambda: _gone(core, "graceful", kube_namespace), message="the pod to go")
    assert marker.read_text() == "term\n"


def test_deletion_kills_after_the_grace_period(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, tmp_path: Path
) -> None:
    _local(kube_cluster)
    pid_file = tmp_path / "pid"
    # `$$` is an escaped `$` in Kubernetes commands, so the shell's `$$` is written `$$$$`.
    script = f"trap '' TERM; echo $$$$ > {pid_file}; while true; do sleep 0.1; done"
    core.create_namespaced_pod(kube_namespace, sleeper_pod("stubborn", script))
    _phase(core, "stubborn", kube_namespace, "Running")
    pid = int(wait_for(lambda: read_when_present(pid_file), message="the pid file"))
    core.delete_namespaced_pod("stubborn", kube_namespace, grace_period_seconds=1)
    assert core.read_namespaced_pod("stubborn", kube_namespace).metadata.deletion_timestamp
    wait_for(lambda: _gone(core, "stubborn", kube_namespace), message="the pod to go")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_gpu_pod_stays_unschedulable_without_gpus(core: Core, kube_namespace: str) -> None:
    pod = sleeper_pod("gpu")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    core.create_namespaced_pod(kube_namespace, pod)

    def unschedulable() -> Any:
        status = core.read_namespaced_pod("gpu", kube_namespace).status
        return next(
            (
                c
                for c in status.conditions or []
                if c.type == "PodScheduled" and c.reason == "Unschedulable"
            ),
            None,
        )

    condition = wait_for(unschedulable, timeout=TIMEOUT, message="an Unschedulable condition")
    assert condition.status == "False"
    assert "Insufficient nvidia.com/gpu" in condition.message
    assert core.read_namespaced_pod("gpu", kube_namespace).status.phase == "Pending"


def test_gpu_pod_is_scheduled_once_the_node_has_a_gpu(
    harness: ThreadedHarness, core: Core, kube_namespace: str
) -> None:
    pod = sleeper_pod("gpu-later")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    core.create_namespaced_pod(kube_namespace, pod)
    wait_for(
        lambda: core.read_namespaced_pod("gpu-later", kube_namespace).status.conditions,
        message="a scheduling decision",
    )
    harness.set_node_capacity(**{"nvidia.com/gpu": "1"})
    _phase(core, "gpu-later", kube_namespace, "Running")


def test_resetting_the_node_capacity_removes_resources_added_since(
    harness: ThreadedHarness, core: Core
) -> None:
    def status() -> dict[str, Any]:
        # Raw JSON: the client's models want node info the harness's Node leaves out.
        (node,) = json.loads(core.list_node(_preload_content=False).data)["items"]
        return dict(node["status"])

    before = status()["allocatable"]
    harness.set_node_capacity(**{"nvidia.com/gpu": "1", "cpu": "64"})
    assert status()["allocatable"]["nvidia.com/gpu"] == "1"
    harness.reset_node_capacity()
    assert status()["allocatable"] == before
    assert status()["capacity"] == before


def test_on_failure_restarts_until_success(
    kube_cluster: KubeCluster, core: Core, kube_namespace: str, tmp_path: Path
) -> None:
    _local(kube_cluster)
    counter = tmp_path / "attempts"
    script = f"echo x >> {counter}; test $(wc -l < {counter}) -ge 3"
    core.create_namespaced_pod(
        kube_namespace, sleeper_pod("retry", script, restartPolicy="OnFailure")
    )
    pod = _phase(core, "retry", kube_namespace, "Succeeded")
    assert pod.status.container_statuses[0].restart_count == 2
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1


def test_image_entrypoint_runs_when_no_command_is_given(tmp_path: Path) -> None:
    script = "import os, sys; print('args', *sys.argv[1:]); sys.exit(0)"
    with ThreadedHarness(
        images={"registry.example/echo": [sys.executable, "-c", script]}, state_dir=tmp_path
    ) as harness:
        api: ApiClient = client.ApiClient(_configuration(harness))
        core: CoreApi = client.CoreV1Api(api)
        pod = {
            "metadata": {"name": "entry"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "registry.example/echo:1.2", "args": ["--lr", "0.1"]}
                ],
            },
        }
        core.create_namespaced_pod("default", pod)
        _phase(core, "entry", "default", "Succeeded")
        assert core.read_namespaced_pod_log("entry", "default") == "args --lr 0.1\n"
        api.close()


def test_image_without_entrypoint_is_err_image_pull(
    harness: ThreadedHarness, core: Core, kube_namespace: str
) -> None:
    pod = {
        "metadata": {"name": "noentry"},
        "spec": {"containers": [{"name": "main", "image": "example.com/unknown:1"}]},
    }
    core.create_namespaced_pod(kube_namespace, pod)

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("noentry", kube_namespace).status.container_statuses
        state = statuses and statuses[0].state.waiting
        # ContainerCreating comes first, as on a real node.
        return state if state and state.reason != "ContainerCreating" else None

    state = wait_for(waiting, message="the container to wait for its image")
    assert state.reason == "ErrImagePull"
    assert core.read_namespaced_pod("noentry", kube_namespace).status.phase == "Pending"


def _configuration(harness: ThreadedHarness) -> client.Configuration:
    configuration = client.Configuration()
    configuration.host = harness.url
    return configuration


def test_termination_message_without_mount_namespaces(tmp_path: Path) -> None:
    message_path = tmp_path / "shared" / "termination-log"
    with ThreadedHarness(isolation=False, state_dir=tmp_path / "state") as harness:
        api: ApiClient = client.ApiClient(_configuration(harness))
        core: CoreApi = client.CoreV1Api(api)
        pod = sleeper_pod("shared", f"echo fallback > {message_path}; exit 1")
        pod["spec"]["containers"][0]["terminationMessagePath"] = str(message_path)
        core.create_namespaced_pod("default", pod)
        finished = _phase(core, "shared", "default", "Failed")
        assert finished.status.container_statuses[0].state.terminated.message == "fallback\n"
        api.close()
