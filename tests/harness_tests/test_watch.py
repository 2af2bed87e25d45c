"""Watch streams (official client's `watch` and raw HTTP).

Covers: ADDED/MODIFIED/DELETED events resumed from a list's resourceVersion; a watch
without resourceVersion starting with synthetic ADDED events; 410 Gone for a version older
than the retained history (harness: after compaction); a label-selector watch seeing an
object leave the selection as DELETED; `sendInitialEvents` ending with the
initial-events-end bookmark; a watch honouring timeoutSeconds.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.harness.threaded import ThreadedHarness
from tests.harness_tests.conftest import CoreApi

# kubernetes.watch ships no type information.
Watch: Any = watch.Watch


def _events(core: CoreApi, namespace: str, count: int, **kwargs: Any) -> list[tuple[str, str]]:
    """The first `count` events of a config-map watch as (type, name)."""
    seen: list[tuple[str, str]] = []
    stream = Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, namespace, timeout_seconds=20, **kwargs
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            stream.stop()
    return seen


def test_watch_from_a_list_version_sees_later_changes(core: CoreApi, kube_namespace: str) -> None:
    version = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", kube_namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("a", kube_namespace)
    events = _events(core, kube_namespace, 3, resource_version=version)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_version_starts_with_the_current_state(
    core: CoreApi, kube_namespace: str
) -> None:
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "b1"}})
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "b2"}})
    assert sorted(_events(core, kube_namespace, 2)) == [("ADDED", "b1"), ("ADDED", "b2")]


def test_watch_from_a_compacted_version_is_gone(
    core: CoreApi, kube_namespace: str, harness: ThreadedHarness
) -> None:
    version = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "c"}})
    harness.compact()
    with pytest.raises(ApiException) as caught:
        _events(core, kube_namespace, 1, resource_version=version)
    assert caught.value.status == 410


def test_label_selector_watch_reports_leaving_objects_as_deleted(
    core: CoreApi, kube_namespace: str
) -> None:
    version = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "d", "labels": {"team": "a"}}}
    )
    core.patch_namespaced_config_map("d", kube_namespace, {"metadata": {"labels": {"team": "b"}}})
    events = _events(core, kube_namespace, 2, resource_version=version, label_selector="team=a")
    assert events == [("ADDED", "d"), ("DELETED", "d")]


def test_send_initial_events_ends_with_a_bookmark(core: CoreApi, kube_namespace: str) -> None:
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "e"}})
    events = []
    stream = Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        kube_namespace,
        send_initial_events=True,
        allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=10,
    ):
        events.append(event)
        if event["type"] == "BOOKMARK":
            stream.stop()
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[-1]["raw_object"]["metadata"]["annotations"]
    assert annotations["k8s.io/initial-events-end"] == "true"


def test_watch_ends_after_timeout_seconds(core: CoreApi, kube_namespace: str) -> None:
    version = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    stream = Watch().stream(
        core.list_namespaced_config_map, kube_namespace, resource_version=version, timeout_seconds=1
    )
    assert list(stream) == []
