"""The real kubectl against the cluster.

Covers: server version and discovery (api-resources with short names), a CRD applied then
its resources listed by short name with printer columns (incl. a JSONPath filter and Age),
`kubectl apply` with default flags creating then updating a custom resource and a core
kind (strategic merge patch), schema refusals surfaced by kubectl, a Pod with a misspelt
field refused (strict field validation), `kubectl delete`
waiting for the object to go, `kubectl get -o yaml` round trip, `kubectl explain` on a CRD.
"""

from __future__ import annotations

import json

from kubernetes import client

from tests.harness.pytest_plugin import KubeCluster, wait_for
from tests.harness_tests.conftest import GROUP, ApiClient, widget


def test_kubectl_reports_the_server_version(kube_cluster: KubeCluster) -> None:
    result = kube_cluster.kubectl("version", "-o", "json")
    server = json.loads(result.stdout)["serverVersion"]
    assert server["major"] == "1"
    assert int(server["minor"].rstrip("+")) >= 29


def test_api_resources_list_core_kinds_with_short_names(kube_cluster: KubeCluster) -> None:
    result = kube_cluster.kubectl("api-resources", "--api-group=", "-o", "wide")
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "po" in lines["pods"].split()
    assert "cm" in lines["configmaps"].split()
    assert {"namespaces", "events", "nodes", "services"} <= set(lines)


def test_crd_resources_are_listed_by_short_name_with_printer_columns(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    body = widget("w1", size=3)
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(body))
    result = kube_cluster.kubectl("get", "wdg", "-n", kube_namespace)
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "SIZE", "READY", "AGE"]
    assert row.split()[0] == "w1"
    assert row.split()[1] == "3"  # an unset Phase and Ready print as empty cells
    assert row.split()[-1].endswith("s")


def test_printer_columns_evaluate_jsonpath_filters(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    api_client: ApiClient,
    widget_crd: str,
) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        GROUP, "v1alpha1", kube_namespace, "widgets", widget("w2", size=2)
    )
    custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1alpha1",
        kube_namespace,
        "widgets",
        "w2",
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Other", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
            }
        },
    )
    result = kube_cluster.kubectl("get", "widgets", "w2", "-n", kube_namespace, "--no-headers")
    assert result.stdout.split()[:4] == ["w2", "Running", "2", "True"]


def test_kubectl_apply_updates_a_custom_resource(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    kube_cluster.kubectl(
        "apply",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=json.dumps(widget("w3", size=2, color="red")),
    )
    changed = widget("w3", size=4)
    result = kube_cluster.kubectl(
        "apply", "-n", kube_namespace, "-f", "-", input=json.dumps(changed)
    )
    assert "configured" in result.stdout
    got = json.loads(
        kube_cluster.kubectl("get", "wdg", "w3", "-n", kube_namespace, "-o", "json").stdout
    )
    assert got["spec"]["size"] == 4
    assert "color" not in got["spec"]  # the three-way merge removed what left the manifest
    assert got["metadata"]["generation"] == 2


def test_kubectl_apply_updates_a_core_kind_by_strategic_merge(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    def configmap(data: dict[str, str]) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "labels": {"app": "x"}},
                "data": data,
            }
        )

    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=configmap({"a": "1"}))
    kube_cluster.kubectl("label", "-n", kube_namespace, "configmap", "cm", "manual=yes")
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=configmap({"b": "2"}))
    got = json.loads(
        kube_cluster.kubectl("get", "cm", "cm", "-n", kube_namespace, "-o", "json").stdout
    )
    assert got["data"] == {"b": "2"}
    assert got["metadata"]["labels"] == {"app": "x", "manual": "yes"}


def test_kubectl_shows_schema_refusals(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    result = kube_cluster.kubectl(
        "apply",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=json.dumps(widget("bad", size=11, min=2, max=1)),
        check=False,
    )
    assert result.returncode != 0
    assert "spec.size" in result.stderr
    assert "min must be below max" in result.stderr


def test_kubectl_refuses_a_pod_with_a_misspelt_field(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    # kubectl asks for strict field validation, as against a real API server.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "typo"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "comand": ["true"]}]},
    }
    result = kube_cluster.kubectl(
        "create", "-n", kube_namespace, "-f", "-", input=json.dumps(pod), check=False
    )
    assert result.returncode != 0
    assert 'strict decoding error: unknown field "spec.containers[0].comand"' in result.stderr


def test_kubectl_delete_waits_until_the_object_is_gone(
    kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(widget("w4")))
    kube_cluster.kubectl("delete", "wdg", "w4", "-n", kube_namespace, "--timeout=30s")
    result = kube_cluster.kubectl("get", "wdg", "w4", "-n", kube_namespace, check=False)
    assert "NotFound" in result.stderr


def test_kubectl_get_yaml_round_trips_through_replace(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    kube_cluster.kubectl("create", "configmap", "rt", "-n", kube_namespace, "--from-literal=k=v")
    dumped = kube_cluster.kubectl("get", "cm", "rt", "-n", kube_namespace, "-o", "json").stdout
    edited = json.loads(dumped)
    edited["data"]["k"] = "w"
    kube_cluster.kubectl("replace", "-f", "-", input=json.dumps(edited))
    value = kube_cluster.kubectl(
        "get", "cm", "rt", "-n", kube_namespace, "-o", "jsonpath={.data.k}"
    ).stdout
    assert value == "w"


def test_kubectl_wait_sees_a_status_condition(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    api_client: ApiClient,
    widget_crd: str,
) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        GROUP, "v1alpha1", kube_namespace, "widgets", widget("w5")
    )
    custom.patch_namespaced_custom_object_status(
        GROUP,
        "v1alpha1",
        kube_namespace,
        "widgets",
        "w5",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    )
    kube_cluster.kubectl(
        "wait", "-n", kube_namespace, "--for=condition=Ready", "wdg/w5", "--timeout=20s"
    )


def test_kubectl_explain_describes_a_crd_field(kube_cluster: KubeCluster, widget_crd: str) -> None:
    result = wait_for(
        lambda: kube_cluster.kubectl("explain", "widgets.spec", check=False),
        message="kubectl explain",
    )
    assert "size" in result.stdout
