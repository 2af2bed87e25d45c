"""Deployments and their ReplicaSets (the harness's controllers, or a real cluster's).

Covers: a Deployment's replicas running as pods of a ReplicaSet it owns, with the status
`kubectl rollout status` reads; a deleted pod replaced; scaling down; `Recreate` deleting
the old pods before it creates new ones (`kubectl rollout restart`); deleting a Deployment
deleting its ReplicaSets and pods; a selector that does not select the template refused;
`kubectl get deployments` showing the ready count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness_tests.conftest import ApiClient, CoreApi

Core = CoreApi
Apps = Any  # kubernetes.client.AppsV1Api, used with plain dicts
TIMEOUT = 90.0  # a real cluster may pull busybox first
# Ends on SIGTERM (also as PID 1 on a real node), `linger` seconds later.
SLEEPER = "trap 'sleep {linger}; exit 0' TERM; sleep 300 & wait"


@pytest.fixture
def apps(api_client: ApiClient) -> Apps:
    return client.AppsV1Api(api_client)


def deployment(name: str, replicas: int = 1, *, linger: float = 0, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", SLEEPER.format(linger=linger)],
                        }
                    ],
                },
            },
            **spec,
        },
    }


def _pods(core: Core, namespace: str, name: str) -> list[Any]:
    """The Deployment's pods that are neither finished nor being deleted."""
    return [
        pod
        for pod in core.list_namespaced_pod(namespace, label_selector=f"app={name}").items
        if pod.metadata.deletion_timestamp is None
        and pod.status.phase not in ("Succeeded", "Failed")
    ]


def _rolled_out(cluster: KubeCluster, namespace: str, name: str) -> None:
    cluster.kubectl(
        "rollout",
        "status",
        f"deployment/{name}",
        "-n",
        namespace,
        f"--timeout={TIMEOUT:.0f}s",
        timeout=TIMEOUT + 10,
    )


def test_deployment_runs_its_replicas_through_a_replica_set(
    kube_cluster: KubeCluster, core: Core, apps: Apps, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, deployment("web", 2))
    _rolled_out(kube_cluster, kube_namespace, "web")
    created = apps.read_namespaced_deployment("web", kube_namespace)
    status = created.status
    assert status.observed_generation == created.metadata.generation
    assert (status.replicas, status.updated_replicas) == (2, 2)
    assert (status.ready_replicas, status.available_replicas) == (2, 2)
    assert {c.type: c.status for c in status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }
    (rs,) = apps.list_namespaced_replica_set(kube_namespace, label_selector="app=web").items
    assert [(r.kind, r.uid, r.controller) for r in rs.metadata.owner_references] == [
        ("Deployment", created.metadata.uid, True)
    ]
    pods = _pods(core, kube_namespace, "web")
    assert [pod.status.phase for pod in pods] == ["Running", "Running"]
    for pod in pods:
        assert pod.metadata.name.startswith(f"{rs.metadata.name}-")
        assert [(r.kind, r.uid) for r in pod.metadata.owner_references] == [
            ("ReplicaSet", rs.metadata.uid)
        ]


def test_deployment_replaces_a_deleted_pod(
    kube_cluster: KubeCluster, core: Core, apps: Apps, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, deployment("keep"))
    _rolled_out(kube_cluster, kube_namespace, "keep")
    (first,) = _pods(core, kube_namespace, "keep")
    core.delete_namespaced_pod(first.metadata.name, kube_namespace)

    def replaced() -> list[Any]:
        pods = _pods(core, kube_namespace, "keep")
        return [p for p in pods if p.metadata.name != first.metadata.name and p.status.pod_ip]

    (second,) = wait_for(replaced, timeout=TIMEOUT, message="a new pod")
    assert len(_pods(core, kube_namespace, "keep")) == 1
    assert second.metadata.owner_references[0].uid == first.metadata.owner_references[0].uid


def test_deployment_scales_down_to_its_replicas(
    kube_cluster: KubeCluster, core: Core, apps: Apps, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, deployment("shrink", 3))
    _rolled_out(kube_cluster, kube_namespace, "shrink")
    apps.patch_namespaced_deployment("shrink", kube_namespace, {"spec": {"replicas": 1}})
    _rolled_out(kube_cluster, kube_namespace, "shrink")
    wait_for(
        lambda: len(_pods(core, kube_namespace, "shrink")) == 1,
        timeout=TIMEOUT,
        message="one pod left",
    )
    status = apps.read_namespaced_deployment("shrink", kube_namespace).status
    assert (status.replicas, status.ready_replicas, status.available_replicas) == (1, 1, 1)


def _pod_events(core: Core, namespace: str, since: str) -> Iterator[tuple[str, str]]:
    """(type, pod name) of every pod event of the namespace after `since`, in order."""
    response = core.list_namespaced_pod(
        namespace,
        watch=True,
        resource_version=since,
        timeout_seconds=2,
        _preload_content=False,
    )
    for line in response.read().decode().splitlines():
        event = json.loads(line)
        yield event["type"], event["object"]["metadata"]["name"]


def test_recreate_deletes_the_old_pods_before_creating_new_ones(
    kube_cluster: KubeCluster, core: Core, apps: Apps, kube_namespace: str
) -> None:
    # Old pods take a second to stop: a rollout that did not wait would overlap them.
    recreate = deployment("once", 2, linger=1, strategy={"type": "Recreate"})
    apps.create_namespaced_deployment(kube_namespace, recreate)
    _rolled_out(kube_cluster, kube_namespace, "once")
    old = {pod.metadata.name for pod in _pods(core, kube_namespace, "once")}
    since = core.list_namespaced_pod(kube_namespace).metadata.resource_version
    kube_cluster.kubectl("rollout", "restart", "deployment/once", "-n", kube_namespace)
    _rolled_out(kube_cluster, kube_namespace, "once")
    new = {pod.metadata.name for pod in _pods(core, kube_namespace, "once")}
    assert len(new) == 2
    assert not new & old
    events = list(_pod_events(core, kube_namespace, since))
    last_old_gone = max(i for i, (kind, name) in enumerate(events) if kind == "DELETED")
    first_new = min(i for i, (kind, name) in enumerate(events) if name in new)
    assert {name for kind, name in events if kind == "DELETED"} == old
    assert last_old_gone < first_new, events


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(
    kube_cluster: KubeCluster, core: Core, apps: Apps, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, deployment("doomed", 2))
    _rolled_out(kube_cluster, kube_namespace, "doomed")
    kube_cluster.kubectl("delete", "deployment", "doomed", "-n", kube_namespace)

    def collected() -> bool:
        replica_sets = apps.list_namespaced_replica_set(kube_namespace).items
        pods = core.list_namespaced_pod(kube_namespace, label_selector="app=doomed").items
        return not replica_sets and not pods

    wait_for(collected, timeout=TIMEOUT, message="the ReplicaSet and pods to go")


def test_selector_must_select_the_template_labels(apps: Apps, kube_namespace: str) -> None:
    mismatched = deployment("odd")
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment(kube_namespace, mismatched)
    assert caught.value.status == 422
    assert "`selector` does not match template `labels`" in str(caught.value.body)


def test_kubectl_get_deployments_shows_the_ready_count(
    kube_cluster: KubeCluster, apps: Apps, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, deployment("shown", 2))
    _rolled_out(kube_cluster, kube_namespace, "shown")
    table = kube_cluster.kubectl("get", "deployments", "-n", kube_namespace).stdout
    header, row = table.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["shown", "2/2", "2", "2"]
