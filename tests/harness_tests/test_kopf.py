"""A kopf operator (operators/widgets.py) running against the cluster as a subprocess.

Covers: the create handler's status patch and result, the update handler on a spec change,
a timer patching status repeatedly, the delete handler with kopf's finalizer (the object
goes away afterwards), events posted by kopf, and a log free of errors and warnings.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness_tests.conftest import GROUP, VERSION, CoreApi, CustomApi, widget

OPERATOR = Path(__file__).parent / "operators" / "widgets.py"
Custom = CustomApi


@pytest.fixture(scope="module")
def operator_log(
    kube_cluster: KubeCluster, widget_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Run the operator in a fresh namespace for this module; its log is checked at the end."""
    namespace = f"kopf-{os.getpid()}"
    kube_cluster.kubectl("create", "namespace", namespace)
    log_path = tmp_path_factory.mktemp("kopf") / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--verbose",
                "--namespace",
                namespace,
                str(OPERATOR),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    state: dict[str, Any] = {"namespace": namespace, "path": log_path, "process": process}
    try:
        wait_for(
            lambda: (
                "Resuming" in log_path.read_text()
                or "Starting" in log_path.read_text()
                or process.poll() is not None
            ),
            message="kopf to start",
        )
        yield state
    finally:
        process.send_signal(signal.SIGINT)
        try:
            state["returncode"] = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            state["returncode"] = process.wait()
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _status(custom: Custom, namespace: str, name: str) -> dict[str, Any]:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", name)
    return dict(obj.get("status") or {})


def test_create_handler_patches_status(custom: Custom, operator_log: dict[str, Any]) -> None:
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "widgets", widget("w-create", size=3)
    )
    status = wait_for(
        lambda: (s := _status(custom, namespace, "w-create")).get("created") and s,
        message="the create handler's result",
    )
    assert status["created"] == {"size": 3}
    assert status["phase"] in ("Created", "Resized")


def test_update_handler_sees_spec_changes(custom: Custom, operator_log: dict[str, Any]) -> None:
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "widgets", widget("w-update", size=2)
    )
    wait_for(
        lambda: _status(custom, namespace, "w-update").get("created"), message="the create handler"
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "widgets", "w-update", {"spec": {"size": 5}}
    )
    wait_for(
        lambda: _status(custom, namespace, "w-update").get("size") == 5,
        message="the update handler",
    )


def test_timer_patches_status_repeatedly(custom: Custom, operator_log: dict[str, Any]) -> None:
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", widget("w-timer"))
    wait_for(
        lambda: int(_status(custom, namespace, "w-timer").get("ticks") or 0) >= 3,
        message="three timer ticks",
    )


def test_delete_handler_runs_and_releases_the_finalizer(
    custom: Custom, operator_log: dict[str, Any]
) -> None:
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", widget("w-delete"))
    wait_for(
        lambda: custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "widgets", "w-delete"
        )["metadata"].get("finalizers"),
        message="kopf's finalizer",
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", "w-delete")

    def gone() -> bool:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", "w-delete")
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, message="the widget to go")
    assert "cleaned up after w-delete" in operator_log["path"].read_text()


def test_kopf_posts_events(core: CoreApi, custom: Custom, operator_log: dict[str, Any]) -> None:
    # Its own widget: xdist may run this module's other tests on another worker, whose
    # operator watches another namespace.
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", widget("w-events"))

    def reasons() -> set[str]:
        events = core.list_namespaced_event(namespace).items
        return {e.reason for e in events if e.involved_object.name == "w-events"}

    # "Created" from the handler's kopf.info, "Logging" from its success posted as an event.
    wait_for(
        lambda: {"Created", "Logging"} <= reasons(), message=lambda: f"events, got {reasons()}"
    )


def test_operator_log_has_no_errors(custom: Custom, operator_log: dict[str, Any]) -> None:
    # xdist may give this worker none of the module's other tests: handle one widget's whole
    # life here, so that the log has something to be clean of.
    namespace = operator_log["namespace"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", widget("w-log"))
    wait_for(lambda: _status(custom, namespace, "w-log").get("created"), message="w-log created")
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", "w-log")
    wait_for(
        lambda: "cleaned up after w-log" in operator_log["path"].read_text(),
        message="w-log's delete handler",
    )
    text = operator_log["path"].read_text()
    problems = [
        line
        for line in text.splitlines()
        if re.search(r"\[(ERROR|WARNING|CRITICAL)\s*\]|Traceback", line)
    ]
    assert problems == []
    assert operator_log["process"].poll() is None
