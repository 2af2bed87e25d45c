"""Deletion semantics: finalizers, ownerReference garbage collection, namespaces.

Covers: an object with a finalizer getting deletionTimestamp and staying until the
finalizer is removed; no new finalizers on a deleting object; background GC of owned
objects once the owner is gone; foreground deletion keeping the owner until its
dependents are gone; orphan deletion leaving dependents without the ownerReference;
deleting a namespace deleting its contents.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.pytest_plugin import wait_for
from tests.harness_tests.conftest import CoreApi

Core = CoreApi


def _gone(core: Core, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _owned(name: str, owner: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner.metadata.name,
                    "uid": owner.metadata.uid,
                    "blockOwnerDeletion": True,
                }
            ],
        }
    }


def test_finalizer_holds_a_deleted_object(core: Core, kube_namespace: str) -> None:
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_config_map("held", kube_namespace)
    held = core.read_namespaced_config_map("held", kube_namespace)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", kube_namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: _gone(core, "held", kube_namespace), message="the object to go")


def test_no_new_finalizers_on_a_deleting_object(core: Core, kube_namespace: str) -> None:
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "closing", "finalizers": ["example.com/a"]}}
    )
    core.delete_namespaced_config_map("closing", kube_namespace)
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "closing",
            kube_namespace,
            {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}},
        )
    assert caught.value.status == 422
    core.patch_namespaced_config_map("closing", kube_namespace, {"metadata": {"finalizers": None}})


def test_dependents_are_collected_after_the_owner_goes(core: Core, kube_namespace: str) -> None:
    owner = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(kube_namespace, _owned("child", owner))
    core.delete_namespaced_config_map("owner", kube_namespace)
    wait_for(lambda: _gone(core, "child", kube_namespace), message="the child to be collected")


def test_foreground_deletion_waits_for_dependents(core: Core, kube_namespace: str) -> None:
    owner = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "fg"}})
    core.create_namespaced_config_map(
        kube_namespace,
        {
            **_owned("fg-child", owner),
        },
    )
    core.patch_namespaced_config_map(
        "fg-child", kube_namespace, {"metadata": {"finalizers": ["example.com/slow"]}}
    )
    core.delete_namespaced_config_map("fg", kube_namespace, propagation_policy="Foreground")
    wait_for(
        lambda: (
            core.read_namespaced_config_map("fg-child", kube_namespace).metadata.deletion_timestamp
        ),
        message="the child to be deleted",
    )
    assert not _gone(core, "fg", kube_namespace)
    core.patch_namespaced_config_map("fg-child", kube_namespace, {"metadata": {"finalizers": None}})
    wait_for(lambda: _gone(core, "fg", kube_namespace), message="the owner to go")


def test_orphan_deletion_keeps_dependents(core: Core, kube_namespace: str) -> None:
    owner = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "orph"}})
    core.create_namespaced_config_map(kube_namespace, _owned("orph-child", owner))
    core.delete_namespaced_config_map("orph", kube_namespace, propagation_policy="Orphan")
    wait_for(lambda: _gone(core, "orph", kube_namespace), message="the owner to go")
    child = core.read_namespaced_config_map("orph-child", kube_namespace)
    assert not child.metadata.owner_references


def test_deleting_a_namespace_deletes_its_contents(core: Core) -> None:
    core.create_namespace({"metadata": {"name": "doomed-ns"}})
    core.create_namespaced_config_map("doomed-ns", {"metadata": {"name": "inside"}})
    core.delete_namespace("doomed-ns")

    def namespace_gone() -> bool:
        try:
            core.read_namespace("doomed-ns")
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(namespace_gone, timeout=60, message="the namespace to go")
    assert core.list_namespaced_config_map("doomed-ns").items == []
