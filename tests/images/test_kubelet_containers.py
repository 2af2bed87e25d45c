"""The test cluster's kubelet running pods as real containers of the built images
(tests/harness/containers.py), where the harness is given a ContainerRuntime for them.

Covers: a pod of a mapped image runs in the image (its user, its filesystem) with its
command's `$(VAR)` references expanded from its env; its termination message is read from
terminationMessagePath; runAsNonRoot refuses a root user (CreateContainerConfigError);
readOnlyRootFilesystem leaves only its emptyDir volume writable; deleting the pod sends
SIGTERM into the container, which can still write to its hostPath volume; a server binding
0.0.0.0 in the container answers at the pod's IP. And the quickstart through the operator
installed by the Helm chart: the operator a container of the operator image, every trial pod
a container of the trainer image, the sweep Succeeded with a winner.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import wait_phase
from tests.e2e.conftest import QUICKSTART
from tests.harness.containers import ContainerRuntime
from tests.harness.pytest_plugin import TEST_HARNESS, KubeCluster, read_when_present, wait_for
from tests.harness.threaded import ThreadedHarness
from tests.images.build import ROOT, Images, engine_env

pytestmark = pytest.mark.images


@pytest.fixture(scope="module")
def runtime(lrsweep_images: Images) -> ContainerRuntime:
    return ContainerRuntime(
        {
            "lrsweep-operator": lrsweep_images.operator.name,
            "lrsweep-trainer": lrsweep_images.trainer.name,
        },
        engine_env=engine_env(),
    )


@pytest.fixture(scope="module")
def cluster(
    runtime: ContainerRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    """A test cluster of its own, whose kubelet runs the images' pods as containers."""
    state = tmp_path_factory.mktemp("container-harness")
    with ThreadedHarness(
        kubeconfig_path=state / "kubeconfig", state_dir=state, containers=runtime
    ) as harness:
        yield KubeCluster(harness.kubeconfig_path, TEST_HARNESS, harness, state / "cache")


def pod(command: list[str], **spec: Any) -> dict[str, Any]:
    """A pod of the operator image (a Python and a shell) running `command`; `container`:
    more fields of its container, the other keywords fields of its spec."""
    container: dict[str, Any] = {
        "name": "main",
        "image": "ghcr.io/lrsweep/lrsweep-operator:0.1.0",
        "command": command,
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:8]}", "namespace": "default"},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def create(cluster: KubeCluster, doc: dict[str, Any]) -> str:
    cluster.kubectl("create", "-f", "-", input=json.dumps(doc))
    return str(doc["metadata"]["name"])


def get(cluster: KubeCluster, name: str) -> dict[str, Any]:
    done = cluster.kubectl("get", "pod", name, "-o", "json", check=False)
    found: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
    return found


def finished(cluster: KubeCluster, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = get(cluster, name)
        return found if found["status"].get("phase") in ("Succeeded", "Failed") else None

    return wait_for(
        probe,
        timeout=60,
        interval=0.2,
        message=lambda: f"pod {name} to finish: {get(cluster, name).get('status')}",
    )


def waiting(cluster: KubeCluster, name: str, reason: str) -> dict[str, Any]:
    """The container's `waiting` state once it has this reason."""

    def probe() -> dict[str, Any] | None:
        statuses = get(cluster, name)["status"].get("containerStatuses") or [{}]
        state: dict[str, Any] = statuses[0].get("state", {}).get("waiting", {})
        return state if state.get("reason") == reason else None

    return wait_for(probe, timeout=30, message=lambda: f"{name} to wait with {reason}")


def logs(cluster: KubeCluster, name: str) -> str:
    return cluster.kubectl("logs", name).stdout


def test_a_pod_runs_in_its_image_with_its_command_expanded(cluster: KubeCluster) -> None:
    name = create(
        cluster,
        pod(
            [
                "sh",
                "-c",
                "echo $(GREETING) $(id -u) && . /etc/os-release && echo $VERSION_CODENAME",
            ],
            container={"env": [{"name": "GREETING", "value": "hello"}]},
        ),
    )
    assert finished(cluster, name)["status"]["phase"] == "Succeeded"
    assert logs(cluster, name).split() == ["hello", "65532", "bookworm"]


def test_its_termination_message_is_read_from_its_path(cluster: KubeCluster) -> None:
    name = create(
        cluster,
        pod(
            ["sh", "-c", "echo bye > /tmp/message; exit 3"],
            container={"terminationMessagePath": "/tmp/message"},
        ),
    )
    done = finished(cluster, name)
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"].strip()) == (3, "bye")


def test_run_as_non_root_refuses_a_root_user(cluster: KubeCluster) -> None:
    name = create(
        cluster,
        pod(["true"], securityContext={"runAsNonRoot": True, "runAsUser": 0}),
    )
    state = waiting(cluster, name, "CreateContainerConfigError")
    assert "runAsNonRoot and image will run as root" in state["message"]
    cluster.kubectl("delete", "pod", name, "--grace-period=0", "--force")


def test_a_read_only_root_filesystem_leaves_its_empty_dir_writable(cluster: KubeCluster) -> None:
    script = "touch /etc/x 2>/dev/null && echo root-writable; touch /data/x && echo data-writable"
    name = create(
        cluster,
        pod(
            ["sh", "-c", script],
            container={
                "securityContext": {"readOnlyRootFilesystem": True},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
    )
    assert finished(cluster, name)["status"]["phase"] == "Succeeded"
    assert logs(cluster, name).split() == ["data-writable"]


def test_deleting_the_pod_sends_sigterm_into_the_container(
    cluster: KubeCluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    script = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        "    pathlib.Path('/out/signal').write_text('SIGTERM')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    name = create(
        cluster,
        pod(
            ["python", "-c", script],
            container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
            volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
            terminationGracePeriodSeconds=20,
        ),
    )
    wait_for(lambda: "ready" in logs(cluster, name), timeout=60, message="the pod to start")
    cluster.kubectl("delete", "pod", name, "--wait=false")
    assert wait_for(lambda: read_when_present(out / "signal"), timeout=20) == "SIGTERM"
    wait_for(lambda: not get(cluster, name), timeout=20, message=f"pod {name} to go")


def test_a_server_on_the_wildcard_address_answers_at_the_pod_ip(cluster: KubeCluster) -> None:
    name = create(cluster, pod(["python", "-m", "http.server", "8000", "--directory", "/etc"]))
    ip = wait_for(lambda: get(cluster, name)["status"].get("podIP"), timeout=30, message="a pod IP")

    def answer() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{ip}:8000/os-release", timeout=2) as reply:
                return str(reply.read().decode())
        except OSError:
            return None

    assert "bookworm" in wait_for(answer, timeout=60, interval=0.3, message=f"{ip}:8000")
    # http.server is the container's PID 1, which ignores SIGTERM: it would wait out its grace.
    cluster.kubectl("delete", "pod", name, "--wait=false")


def test_the_quickstart_runs_through_the_charted_operator_with_trials_as_containers(
    cluster: KubeCluster, runtime: ContainerRuntime, lrsweep_images: Images
) -> None:
    namespace = "lrsweep-system"
    operator_image = lrsweep_images.operator.name
    repository, tag = operator_image.rsplit(":", 1)
    cluster.helm(
        "install", "lrsweep", str(ROOT / "charts" / "lrsweep"), "-n", namespace,
        "--create-namespace", "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}", "--set-json", "operator.reconcileInterval=0.5",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", str(QUICKSTART))
    sweep = wait_phase(cluster, namespace, "quickstart", ("Succeeded", "Failed"), 500)
    assert sweep["status"]["phase"] == "Succeeded", sweep["status"].get("message")
    assert sweep["status"]["bestLearningRate"] > 0
    ran = [(pod, image) for ns, pod, _, image in runtime.ran if ns == namespace]
    assert [image for pod, image in ran if pod.startswith("lrsweep-")] == [operator_image]
    trials = {pod: image for pod, image in ran if pod.startswith("quickstart-")}
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", "lrsweep.dev/sweep=quickstart",
                          "-o", "json").stdout  # fmt: skip
    pods = {p["metadata"]["name"] for p in json.loads(out)["items"]}
    assert pods <= set(trials)
    assert set(trials.values()) == {lrsweep_images.trainer.name}
    cluster.helm("uninstall", "lrsweep", "-n", namespace, "--wait", "--timeout", "60s")
