"""The store on its own, without a server.

Covers: reads list objects by namespace and name whatever order they were written in; the
garbage collector's candidates (objects with ownerReferences or a deletionTimestamp) follow
each write and removal.
"""

from __future__ import annotations

from tests.harness.meta import Obj
from tests.harness.store import Store

PODS = "/pods"


def _pod(name: str, namespace: str = "ns", **metadata: object) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": "1",
            **metadata,
        }
    }


def _write(store: Store, obj: Obj) -> None:
    meta = obj["metadata"]
    old = store.peek_one(PODS, meta["namespace"], meta["name"])
    store.write(PODS, obj, old)


def _names(objects: list[Obj]) -> list[str]:
    return [obj["metadata"]["name"] for obj in objects]


def test_reads_list_objects_by_namespace_and_name_whatever_the_write_order() -> None:
    store = Store()
    for name, namespace in (("b", "ns"), ("c", "a-ns"), ("a", "ns")):
        _write(store, _pod(name, namespace))
    store.peek(PODS)  # an order known before the next object comes
    _write(store, _pod("0", "ns"))
    assert _names(store.peek(PODS)) == ["c", "0", "a", "b"]


def test_a_removed_object_is_no_longer_listed() -> None:
    store = Store()
    for name in ("a", "b"):
        _write(store, _pod(name))
    store.peek(PODS)
    store.remove(PODS, _pod("a"))
    assert _names(store.peek(PODS)) == ["b"]


def test_collector_candidates_are_objects_with_owners_or_a_deletion_timestamp() -> None:
    store = Store()
    _write(store, _pod("plain"))
    _write(store, _pod("owned", ownerReferences=[{"uid": "owner"}]))
    _write(store, _pod("deleting", deletionTimestamp="2024-01-01T00:00:00Z"))
    _write(store, _pod("empty-owners", ownerReferences=[]))
    assert _names(store.peek_collectable(PODS)) == ["deleting", "owned"]


def test_an_object_whose_owners_are_dropped_is_no_longer_a_collector_candidate() -> None:
    store = Store()
    _write(store, _pod("orphan", ownerReferences=[{"uid": "owner"}]))
    _write(store, _pod("orphan"))
    assert store.peek_collectable(PODS) == []


def test_a_removed_object_is_no_longer_a_collector_candidate() -> None:
    store = Store()
    owned = _pod("owned", ownerReferences=[{"uid": "owner"}])
    _write(store, owned)
    store.remove(PODS, owned)
    assert store.peek_collectable(PODS) == []
