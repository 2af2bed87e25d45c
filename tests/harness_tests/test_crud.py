"""Create/read/update/delete through the official kubernetes client.

Covers: generateName, uid and creationTimestamp on create; AlreadyExists; NotFound; list
with pagination; a stale replace answered 409 Conflict; generation bumped by spec changes
only; a no-op update keeping the resourceVersion; merge patch; JSON patch incl. a failed
`test` op (422); strategic merge patch of pod containers by name; the status subresource
(main-resource writes ignore status, /status writes change only status); a CR replace
without resourceVersion refused; namespaced objects refused in a missing namespace.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness_tests.conftest import GROUP, VERSION, CoreApi, CustomApi, sleeper_pod, widget

Custom = CustomApi
JSON_PATCH = "application/json-patch+json"


def _create(custom: Custom, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "widgets", body
    )
    return result


def _get(custom: Custom, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "widgets", name
    )
    return result


def test_create_fills_in_uid_timestamp_and_generated_name(
    custom: Custom, kube_namespace: str
) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    created = _create(custom, kube_namespace, body)
    meta = created["metadata"]
    assert meta["name"].startswith("gen-")
    assert len(meta["name"]) == len("gen-") + 5
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["resourceVersion"]
    assert meta["generation"] == 1


def test_create_twice_is_already_exists(custom: Custom, kube_namespace: str) -> None:
    _create(custom, kube_namespace, widget("dup"))
    with pytest.raises(ApiException) as caught:
        _create(custom, kube_namespace, widget("dup"))
    assert caught.value.status == 409
    assert "AlreadyExists" in str(caught.value.body)


def test_get_missing_is_not_found(core: CoreApi, kube_namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("missing", kube_namespace)
    assert caught.value.status == 404


def test_create_in_a_missing_namespace_is_not_found(core: CoreApi) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("no-such-namespace-here", {"metadata": {"name": "x"}})
    assert caught.value.status == 404


def test_list_pages_through_with_limit_and_continue(core: CoreApi, kube_namespace: str) -> None:
    for index in range(5):
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": f"cm{index}"}})
    names: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(kube_namespace, limit=2, _continue=token)
        names += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(names) == [f"cm{index}" for index in range(5)]


def test_stale_replace_is_a_conflict(custom: Custom, kube_namespace: str) -> None:
    first = _create(custom, kube_namespace, widget("stale"))
    fresh = dict(first, spec={"size": 2})
    custom.replace_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "stale", fresh
    )
    outdated = dict(first, spec={"size": 3})
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, "widgets", "stale", outdated
        )
    assert caught.value.status == 409
    assert "the object has been modified" in str(caught.value.body)


def test_custom_replace_without_resource_version_is_refused(
    custom: Custom, kube_namespace: str
) -> None:
    _create(custom, kube_namespace, widget("norv"))
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, "widgets", "norv", widget("norv", size=2)
        )
    assert caught.value.status == 422


def test_generation_moves_on_spec_changes_only(custom: Custom, kube_namespace: str) -> None:
    _create(custom, kube_namespace, widget("gen"))
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "gen", {"metadata": {"labels": {"a": "b"}}}
    )
    assert _get(custom, kube_namespace, "gen")["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "gen", {"spec": {"size": 5}}
    )
    assert _get(custom, kube_namespace, "gen")["metadata"]["generation"] == 2


def test_a_no_op_patch_keeps_the_resource_version(custom: Custom, kube_namespace: str) -> None:
    created = _create(custom, kube_namespace, widget("noop", size=2))
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "noop", {"spec": {"size": 2}}
    )
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_merge_patch_null_removes_a_field(core: CoreApi, kube_namespace: str) -> None:
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "mp"}, "data": {"a": "1", "b": "2"}}
    )
    core.patch_namespaced_config_map(
        "mp", kube_namespace, {"data": {"a": None}}, _content_type="application/merge-patch+json"
    )
    assert core.read_namespaced_config_map("mp", kube_namespace).data == {"b": "2"}


def test_json_patch_applies_operations_after_a_passing_test(
    custom: Custom, kube_namespace: str
) -> None:
    created = _create(custom, kube_namespace, widget("jp"))
    version = created["metadata"]["resourceVersion"]
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        kube_namespace,
        "widgets",
        "jp",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
            {"op": "replace", "path": "/spec/size", "value": 7},
        ],
        _content_type=JSON_PATCH,
    )
    assert patched["metadata"]["annotations"] == {"k": "v"}
    assert patched["spec"]["size"] == 7


def test_json_patch_with_a_failing_test_is_unprocessable(
    custom: Custom, kube_namespace: str
) -> None:
    _create(custom, kube_namespace, widget("jpf"))
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            "widgets",
            "jpf",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "replace", "path": "/spec/size", "value": 7},
            ],
            _content_type=JSON_PATCH,
        )
    assert caught.value.status == 422
    assert _get(custom, kube_namespace, "jpf")["spec"]["size"] == 1


def test_strategic_merge_patch_merges_containers_by_name(
    core: CoreApi, kube_namespace: str
) -> None:
    pod = sleeper_pod("smp")
    pod["spec"]["containers"].append(
        {"name": "side", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 300"]}
    )
    core.create_namespaced_pod(kube_namespace, pod)
    core.patch_namespaced_pod(
        "smp", kube_namespace, {"spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}}
    )
    containers = core.read_namespaced_pod("smp", kube_namespace).spec.containers
    assert [(c.name, c.image) for c in containers] == [
        ("main", "busybox:1.36"),
        ("side", "busybox:1.37"),
    ]


def test_main_resource_writes_ignore_status(custom: Custom, kube_namespace: str) -> None:
    created = _create(custom, kube_namespace, dict(widget("st"), status={"phase": "Bogus"}))
    assert "status" not in created
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "st", {"status": {"phase": "X"}}
    )
    assert "status" not in patched


def test_status_writes_change_only_status(custom: Custom, kube_namespace: str) -> None:
    _create(custom, kube_namespace, widget("st2"))
    patched = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        kube_namespace,
        "widgets",
        "st2",
        {"status": {"phase": "Running"}, "spec": {"size": 9}, "metadata": {"labels": {"x": "y"}}},
    )
    assert patched["status"] == {"phase": "Running"}
    assert patched["spec"]["size"] == 1
    assert "labels" not in patched["metadata"]
    assert patched["metadata"]["generation"] == 1
