"""The operator's Kubernetes API calls (`runtime.cluster.Cluster`) against the test cluster.

Covers: listed pods are the JSON the API server sends (its camelCase names and timestamps,
as the watch shows them); a pod the API refuses is named by the API's message; calls whose
responses are not read into models give their connection back for the next call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from lrsweep.runtime.cluster import Cluster
from lrsweep.runtime.pods import LABEL_SWEEP
from lrsweep.telemetry import Telemetry
from tests.harness.pytest_plugin import KubeCluster

pytestmark = [pytest.mark.cluster]


@pytest.fixture
def cluster(kube_cluster: KubeCluster) -> Iterator[Cluster]:
    """A Cluster of the test cluster whose client keeps one connection for reuse."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kube_cluster.kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 1
    core = client.CoreV1Api(client.ApiClient(configuration))
    made = Cluster(core, Telemetry())
    yield made
    asyncio.run(made.close())
    core.api_client.close()


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL_SWEEP: "s"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "trainer", "image": "lrsweep-sim-trainer:0.1.0"}],
        },
    }


def test_listed_pods_are_the_json_the_api_server_sends(
    kube_cluster: KubeCluster, kube_namespace: str, cluster: Cluster
) -> None:
    assert asyncio.run(cluster.create_pod(kube_namespace, pod("p"))) is None
    listed = asyncio.run(cluster.list_pods(kube_namespace, "s"))
    got = json.loads(
        kube_cluster.kubectl("get", "pod", "p", "-n", kube_namespace, "-o", "json").stdout
    )
    assert [p["metadata"]["name"] for p in listed] == ["p"]
    assert listed[0]["metadata"]["creationTimestamp"] == got["metadata"]["creationTimestamp"]
    assert listed[0]["metadata"]["labels"] == {LABEL_SWEEP: "s"}


def test_a_pod_the_api_refuses_is_named_by_the_apis_message(
    kube_namespace: str, cluster: Cluster
) -> None:
    problem = asyncio.run(cluster.create_pod(kube_namespace, pod("Not_A_Name")))
    assert problem is not None
    assert 'Invalid value: "Not_A_Name"' in problem


def test_calls_not_read_into_models_give_their_connection_back(
    kube_namespace: str, cluster: Cluster
) -> None:
    sweep = {"metadata": {"name": "s", "namespace": kube_namespace, "uid": "u"}}

    async def calls() -> None:
        for i in range(3):
            assert await cluster.create_pod(kube_namespace, pod(f"p{i}")) is None
            await cluster.post_event(
                sweep, "Normal", "TrialStarted", f"p{i}", "2026-01-01T00:00:00Z"
            )
            await cluster.list_pods(kube_namespace, "s")
            await cluster.delete_pod(kube_namespace, f"p{i}", 0)

    asyncio.run(calls())
    api = cluster.core.api_client
    pool = api.rest_client.pool_manager.connection_from_url(api.configuration.host)
    assert pool.num_connections == 1  # one connection, given back after every call
