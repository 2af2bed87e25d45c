"""Decoding of the protobuf request bodies kubectl's and helm's typed clients send.

kubectl's `create namespace|configmap|secret|serviceaccount` POST
`application/vnd.kubernetes.protobuf` bodies (its reads accept JSON, which the harness
answers), and helm's release storage DELETEs with a protobuf `DeleteOptions` body (`helm
uninstall` purging the release Secret). This decodes those kinds from the `k8s\\x00`
envelope (a `runtime.Unknown`) using the field numbers of k8s.io/api's and
k8s.io/apimachinery's generated.proto; other kinds are refused with 415.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tests.harness.meta import ApiError, Obj

MAGIC = b"k8s\x00"

# A field is (name, kind) where kind is a decoder name or a nested message schema.
Schema = dict[int, tuple[str, Any]]

_TYPE_META: Schema = {1: ("apiVersion", "string"), 2: ("kind", "string")}
_UNKNOWN: Schema = {
    1: ("typeMeta", _TYPE_META),
    2: ("raw", "rawbytes"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}
_OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    11: ("labels", "map:string"),
    12: ("annotations", "map:string"),
    13: ("ownerReferences[]", _OWNER_REFERENCE),
    14: ("finalizers[]", "string"),
}
_KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("finalizers[]", "string")})},
    "ConfigMap": {
        1: ("metadata", _OBJECT_META),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", _OBJECT_META),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", _OBJECT_META),
        3: ("imagePullSecrets[]", {1: ("name", "string")}),
        4: ("automountServiceAccountToken", "bool"),
    },
    # meta/v1, registered in every group version (a DELETE's body names the resource's own).
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int64"),
        2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun[]", "string"),
    },
}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) triples of one message."""
    fields = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value = data[position : position + 8]
            position += 8
        elif wire == 5:
            value = data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "string": lambda raw: bytes(raw).decode(),
    "bytes": lambda raw: base64.b64encode(bytes(raw)).decode(),
    "bool": bool,
    "int64": lambda raw: raw - (1 << 64) if raw >= 1 << 63 else raw,  # two's complement varint
    "rawbytes": bytes,
}


def _decode(data: bytes, schema: Schema) -> Obj:
    result: Obj = {}
    for number, _wire, raw in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        repeated = name.endswith("[]")
        name = name.removesuffix("[]")
        if isinstance(kind, dict):
            value: Any = _decode(raw, kind)
        elif kind.startswith("map:"):
            entry = {n: v for n, _w, v in _fields(raw)}
            key = _SCALARS["string"](entry.get(1, b""))
            result.setdefault(name, {})[key] = _SCALARS[kind[4:]](entry.get(2, b""))
            continue
        else:
            value = _SCALARS[kind](raw)
        if repeated:
            result.setdefault(name, []).append(value)
        else:
            result[name] = value
    return result


def decode_object(body: bytes) -> Obj:
    if not body.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "protobuf body without the k8s envelope")
    try:
        unknown = _decode(body[len(MAGIC) :], _UNKNOWN)
        type_meta = unknown.get("typeMeta", {})
        schema = _KINDS.get(type_meta.get("kind", ""))
        if schema is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the test cluster decodes protobuf only for {sorted(_KINDS)}, not "
                f"{type_meta.get('kind')!r}; send JSON",
            )
        raw = unknown.get("raw", b"")
        return {**type_meta, **_decode(raw, schema)}
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"could not decode the protobuf body: {exc}") from exc
