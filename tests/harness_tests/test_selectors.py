"""Label and field selectors on list requests (official client and kubectl).

Covers: equality, inequality, set-based (in, notin) and existence label selectors;
field selectors on metadata.name and metadata.namespace (all kinds), status.phase and
spec.nodeName (pods); an unsupported field label refused with 400; kubectl's `-l`.
"""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness_tests.conftest import CoreApi, sleeper_pod

LABELS = {
    "one": {"tier": "web", "env": "prod"},
    "two": {"tier": "db", "env": "prod"},
    "three": {"tier": "web"},
}


@pytest.fixture
def labelled(core: CoreApi, kube_namespace: str) -> str:
    for name, labels in LABELS.items():
        core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": name, "labels": labels}}
        )
    return kube_namespace


def _names(core: CoreApi, namespace: str, **selectors: str) -> list[str]:
    items = core.list_namespaced_config_map(namespace, **selectors).items
    return sorted(item.metadata.name for item in items)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["one", "three"]),
        ("tier==web,env=prod", ["one"]),
        ("tier!=web", ["two"]),
        ("tier in (db, cache)", ["two"]),
        ("tier notin (db)", ["one", "three"]),
        ("env", ["one", "two"]),
        ("!env", ["three"]),
    ],
)
def test_label_selector(core: CoreApi, labelled: str, selector: str, expected: list[str]) -> None:
    assert _names(core, labelled, label_selector=selector) == expected


def test_field_selector_on_name(core: CoreApi, labelled: str) -> None:
    assert _names(core, labelled, field_selector="metadata.name=two") == ["two"]


def test_field_selector_on_namespace_across_namespaces(core: CoreApi, labelled: str) -> None:
    items = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled}"
    ).items
    assert sorted(item.metadata.name for item in items) == ["one", "three", "two"]


def test_unsupported_field_selector_is_a_bad_request(core: CoreApi, labelled: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(labelled, field_selector="data.k=v")
    assert caught.value.status == 400


def test_pod_field_selectors_on_phase_and_node(core: CoreApi, kube_namespace: str) -> None:
    core.create_namespaced_pod(kube_namespace, sleeper_pod("quick", "exit 0"))
    wait_for(
        lambda: core.read_namespaced_pod("quick", kube_namespace).status.phase == "Succeeded",
        message="the pod to succeed",
    )
    node = core.read_namespaced_pod("quick", kube_namespace).spec.node_name
    succeeded = core.list_namespaced_pod(
        kube_namespace, field_selector=f"status.phase=Succeeded,spec.nodeName={node}"
    ).items
    running = core.list_namespaced_pod(kube_namespace, field_selector="status.phase=Running").items
    assert [pod.metadata.name for pod in succeeded] == ["quick"]
    assert running == []


def test_kubectl_label_selector(kube_cluster: KubeCluster, labelled: str) -> None:
    result = kube_cluster.kubectl("get", "cm", "-n", labelled, "-l", "tier=web,env", "-o", "name")
    assert result.stdout.split() == ["configmap/one"]
