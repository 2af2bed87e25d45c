"""Fault injection (harness only; each test skips on a real cluster).

Covers: a budget of 500 answers then normal service; 429 answers with Retry-After; added
latency; faults limited to matching requests; the admin endpoint exempt from faults and
configuring them over HTTP; faults given when the harness starts; dropping open watch
streams; ending watch streams after a timeout; evicting a running pod (Failed, reason
Evicted, DisruptionTarget); the requests answered, counted by verb and resource.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.faults import Faults
from tests.harness.pytest_plugin import wait_for
from tests.harness.threaded import ThreadedHarness
from tests.harness_tests.conftest import CoreApi, sleeper_pod

Core = CoreApi


def _request(
    harness: ThreadedHarness, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    url = urllib.parse.urlsplit(harness.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None
    finally:
        connection.close()


def test_error_budget_yields_500s_then_service(harness: ThreadedHarness) -> None:
    harness.set_faults(error_rate=1.0, budget=2)
    codes = [_request(harness, "GET", "/api/v1/namespaces")[0] for _ in range(3)]
    assert codes == [500, 500, 200]


def test_throttling_answers_429_with_retry_after(harness: ThreadedHarness) -> None:
    harness.set_faults(throttle_rate=1.0, retry_after=3)
    status, headers, body = _request(harness, "GET", "/api/v1/namespaces")
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert body["reason"] == "TooManyRequests"


def test_the_official_client_sees_injected_errors(harness: ThreadedHarness, core: Core) -> None:
    harness.set_faults(error_rate=1.0, budget=1)
    with pytest.raises(ApiException) as caught:
        core.list_namespace()
    assert caught.value.status == 500
    assert core.list_namespace().items


def test_latency_delays_requests(harness: ThreadedHarness) -> None:
    harness.set_faults(latency=0.3)
    started = time.monotonic()
    _request(harness, "GET", "/api/v1/namespaces")
    assert time.monotonic() - started >= 0.3


def test_faults_apply_only_to_matching_requests(harness: ThreadedHarness) -> None:
    harness.set_faults(error_rate=1.0, match=r"^GET /api/v1/nodes")
    assert _request(harness, "GET", "/api/v1/namespaces")[0] == 200
    assert _request(harness, "GET", "/api/v1/nodes")[0] == 500


def test_admin_endpoint_is_exempt_and_configures_faults(harness: ThreadedHarness) -> None:
    status, _, body = _request(harness, "PUT", "/_harness/faults", {"error_rate": 1.0})
    assert status == 200
    assert body["error_rate"] == 1.0
    assert _request(harness, "GET", "/_harness/faults")[0] == 200
    assert _request(harness, "GET", "/api/v1/namespaces")[0] == 500
    status, _, _ = _request(harness, "PATCH", "/_harness/faults", {"nonsense": 1})
    assert status == 400


def _stream_until_closed(harness: ThreadedHarness, path: str, ended: threading.Event) -> None:
    url = urllib.parse.urlsplit(harness.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        while response.read(1):
            pass
    finally:
        connection.close()
        ended.set()


def _watch_path(core: Core, namespace: str) -> str:
    version = core.list_namespaced_config_map(namespace).metadata.resource_version
    return f"/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={version}"


def test_dropping_watches_ends_open_streams(
    harness: ThreadedHarness, core: Core, kube_namespace: str
) -> None:
    ended = threading.Event()
    path = _watch_path(core, kube_namespace)
    thread = threading.Thread(target=_stream_until_closed, args=(harness, path, ended))
    thread.start()

    # Dropped again until this stream ends: a drop may come before the server has opened
    # its watch, while watches of other tests' operators (on this worker) are there to drop.
    # The stream's own timeout (30 s) is longer than this wait's.
    def dropped() -> bool | None:
        harness.drop_watches()
        return ended.is_set() or None

    wait_for(dropped, timeout=10, message="the stream to end once its watch is dropped")
    thread.join(10)


def test_watch_timeout_fault_ends_streams(
    harness: ThreadedHarness, core: Core, kube_namespace: str
) -> None:
    harness.set_faults(watch_timeout=0.5)
    ended = threading.Event()
    _stream_until_closed(harness, _watch_path(core, kube_namespace), ended)
    assert ended.is_set()


def test_evicting_a_running_pod_fails_it(
    harness: ThreadedHarness, core: Core, kube_namespace: str
) -> None:
    core.create_namespaced_pod(kube_namespace, sleeper_pod("victim"))
    wait_for(
        lambda: core.read_namespaced_pod("victim", kube_namespace).status.phase == "Running",
        message="the pod to run",
    )
    status, _, _ = _request(harness, "POST", f"/_harness/pods/{kube_namespace}/victim/evict")
    assert status == 200
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("victim", kube_namespace)).status.phase == "Failed" and p
        ),
        message="the pod to fail",
    )
    assert pod.status.reason == "Evicted"
    assert "low on resource" in pod.status.message
    conditions = {c.type: c for c in pod.status.conditions}
    assert conditions["DisruptionTarget"].reason == "TerminationByKubelet"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 137


def test_faults_configured_at_start_apply_from_the_first_request(tmp_path: Path) -> None:
    faults = Faults(error_rate=1.0, budget=1)
    with ThreadedHarness(faults=faults, state_dir=tmp_path) as started:
        assert _request(started, "GET", "/api/v1/namespaces")[0] == 500
        assert _request(started, "GET", "/api/v1/namespaces")[0] == 200


def test_the_harness_counts_the_requests_it_answers(harness: ThreadedHarness) -> None:
    before = harness.request_counts().get("list pods", 0)
    for _ in range(2):
        _request(harness, "GET", "/api/v1/namespaces/default/pods")
    assert harness.request_counts()["list pods"] == before + 2
