"""The harness's pure building blocks, without a server.

Covers: strategic merge patch directives ($patch delete/replace, $setElementOrder,
$retainKeys, $deleteFromPrimitiveList, finalizer union); JSON patch move/copy/remove
errors; label selector parsing errors; resource quantities; printer-column JSONPath;
kubectl's human durations; `$(VAR)` expansion; protobuf decoding of a ConfigMap and of
DeleteOptions; pod addresses of kubelets in two pytest-xdist workers, or in one process,
never overlap; requests named by verb and resource, as the API server's audit log does.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from tests.harness.kubelet import expand, first_pod_address
from tests.harness.meta import ApiError, human_duration
from tests.harness.patching import json_patch, strategic_merge_patch
from tests.harness.protobuf import MAGIC, decode_object
from tests.harness.quantity import parse_quantity
from tests.harness.selectors import parse_label_selector
from tests.harness.server import request_verb
from tests.harness.tables import jsonpath

POD: dict[str, Any] = {
    "spec": {
        "containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"},
        ]
    }
}


def test_smp_deletes_a_list_element_by_merge_key() -> None:
    patched = strategic_merge_patch(
        POD, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}
    )
    assert [c["name"] for c in patched["spec"]["containers"]] == ["b"]


def test_smp_replaces_a_map() -> None:
    patched = strategic_merge_patch(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
    )
    assert patched["metadata"]["labels"] == {"c": "3"}


def test_smp_merges_nested_lists_and_orders_elements() -> None:
    patched = strategic_merge_patch(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}],
            }
        },
    )
    assert [c["name"] for c in patched["spec"]["containers"]] == ["b", "a"]
    assert [e["name"] for e in patched["spec"]["containers"][1]["env"]] == ["X", "Y"]


def test_smp_retain_keys_drops_other_keys() -> None:
    patched = strategic_merge_patch(
        {"strategy": {"type": "A", "rollingUpdate": {"x": 1}}},
        {"strategy": {"$retainKeys": ["type"], "type": "B"}},
    )
    assert patched == {"strategy": {"type": "B"}}


def test_smp_unions_finalizers_and_deletes_from_primitive_lists() -> None:
    original = {"metadata": {"finalizers": ["a", "b"]}}
    assert strategic_merge_patch(original, {"metadata": {"finalizers": ["c"]}}) == {
        "metadata": {"finalizers": ["a", "b", "c"]}
    }
    assert strategic_merge_patch(
        original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    ) == {"metadata": {"finalizers": ["b"]}}


def test_json_patch_moves_and_copies() -> None:
    patched = json_patch(
        {"a": {"x": 1}, "l": [1, 2]},
        [
            {"op": "copy", "from": "/a/x", "path": "/b"},
            {"op": "move", "from": "/l/0", "path": "/l/-"},
        ],
    )
    assert patched == {"a": {"x": 1}, "b": 1, "l": [2, 1]}


def test_json_patch_removing_a_missing_key_is_unprocessable() -> None:
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, [{"op": "remove", "path": "/b"}])
    assert caught.value.code == 422


def test_malformed_label_selector_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector("a in (x")
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1e3", Fraction(1000)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
    ],
)
def test_quantities(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_jsonpath_filter_and_index() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]
        }
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".status.conditions[0].type") == ["A"]
    assert jsonpath(obj, ".status.missing") == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "5s"), (130, "2m10s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (50 * 3600, "2d2h")],
)
def test_human_durations(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_variable_expansion() -> None:
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_configmap_is_decoded() -> None:
    meta = _field(1, b"cm") + _field(11, _field(1, b"k") + _field(2, b"v"))
    raw = _field(1, meta) + _field(2, _field(1, b"key") + _field(2, b"value"))
    type_meta = _field(1, b"v1") + _field(2, b"ConfigMap")
    body = MAGIC + _field(1, type_meta) + _field(2, raw)
    assert decode_object(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"k": "v"}},
        "data": {"key": "value"},
    }


def _varint_field(number: int, value: int) -> bytes:
    encoded = b""
    value &= (1 << 64) - 1  # a negative int64 is ten bytes of two's complement
    while value > 0x7F:
        encoded += bytes([value & 0x7F | 0x80])
        value >>= 7
    return bytes([number << 3]) + encoded + bytes([value])


def test_protobuf_delete_options_are_decoded() -> None:
    raw = (
        _varint_field(1, -1)
        + _field(2, _field(1, b"uid-1"))
        + _field(4, b"Foreground")
        + _field(5, b"All")
    )
    type_meta = _field(1, b"v1") + _field(2, b"DeleteOptions")
    assert decode_object(MAGIC + _field(1, type_meta) + _field(2, raw)) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": -1,
        "preconditions": {"uid": "uid-1"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def _blocks(monkeypatch: pytest.MonkeyPatch, worker: str, kubelets: int) -> set[int]:
    """The 127.B.0.0/16 blocks (B) that `kubelets` kubelets of one xdist worker start in."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    return {first_pod_address() >> 16 for _ in range(kubelets)}


def test_kubelets_of_two_xdist_workers_never_share_a_pod_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw0, gw1 = _blocks(monkeypatch, "gw0", 16), _blocks(monkeypatch, "gw1", 16)
    assert len(gw0) == len(gw1) == 16  # each kubelet in a worker its own block
    assert not gw0 & gw1


@pytest.mark.parametrize(
    ("method", "path", "query", "named"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", {"labelSelector": "a=b"}, "list pods"),
        ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, "watch pods"),
        ("GET", "/api/v1/watch/namespaces/ns/pods", {}, "watch pods"),
        ("GET", "/api/v1/namespaces/ns", {}, "get namespaces"),
        ("POST", "/api/v1/namespaces/ns/pods", {}, "create pods"),
        ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, "delete pods"),
        (
            "PATCH",
            "/apis/lrsweep.dev/v1alpha1/namespaces/ns/lrsweeps/s/status",
            {},
            "patch lrsweeps/status",
        ),
        ("GET", "/apis/lrsweep.dev/v1alpha1/lrsweeps", {}, "list lrsweeps"),
        ("GET", "/apis/lrsweep.dev/v1alpha1", {}, "get discovery"),
        ("GET", "/version", {}, "get discovery"),
    ],
)
def test_requests_are_named_by_verb_and_resource(
    method: str, path: str, query: dict[str, str], named: str
) -> None:
    assert request_verb(method, path, query) == named
