"""The three PATCH flavours: JSON merge patch, JSON patch, strategic merge patch.

Errors follow the API server: a JSON patch that cannot be applied (a failed `test`,
a missing path) is 422; a malformed patch document is 400.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from tests.harness.meta import JSON, ApiError, bad_request


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge recursively, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[JSON], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit():
        raise _unprocessable(f"invalid array index: {token!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise _unprocessable(f"array index out of bounds: {index}")
    return index


def _resolve(doc: JSON, tokens: list[str], path: str) -> JSON:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise _unprocessable(f"doc is missing path: {path!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise _unprocessable(f"doc is missing path: {path!r}")
    return node


def _add(doc: JSON, tokens: list[str], value: JSON, path: str) -> JSON:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise _unprocessable(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: JSON, tokens: list[str], path: str) -> JSON:
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_add=False))
    raise _unprocessable(f"doc is missing path: {path!r}")


def json_patch(target: JSON, operations: JSON) -> JSON:
    """RFC 6902, all six operations."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request(f"invalid JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        tokens = _pointer(path)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise bad_request(f"missing value for {op!r} operation at {path!r}")
        if op == "add":
            doc = _add(doc, tokens, copy.deepcopy(operation["value"]), path)
        elif op == "remove":
            _remove(doc, tokens, path)
        elif op == "replace":
            _resolve(doc, tokens, path)
            if tokens:
                _remove(doc, tokens, path)
            doc = _add(doc, tokens, copy.deepcopy(operation["value"]), path)
        elif op == "test":
            actual = _resolve(doc, tokens, path)
            if actual != operation["value"]:
                raise _unprocessable(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed: {actual!r} != {operation['value']!r}"
                )
        elif op in ("move", "copy"):
            source_path = operation.get("from")
            if source_path is None:
                raise bad_request(f"missing 'from' for {op!r} operation")
            source = _pointer(source_path)
            if op == "move":
                value = _remove(doc, source, source_path)
            else:
                value = copy.deepcopy(_resolve(doc, source, source_path))
            doc = _add(doc, tokens, value, path)
        else:
            raise bad_request(f"unexpected JSON patch operation: {op!r}")
    return doc


# Strategic merge patch: the patch strategy of the list fields of core kinds, as in the
# `patchStrategy`/`patchMergeKey` struct tags of k8s.io/api. Lists not named here are atomic.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "addresses": "type",
}
_PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _merge_key(path: Sequence[str], field: str) -> str | None:
    if field == "ports":
        # Container ports merge by containerPort; Service ports by port.
        return "containerPort" if "containers" in path or "initContainers" in path else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(target: JSON, patch: JSON) -> JSON:
    """Strategic merge patch for core kinds, with the directives `kubectl apply` sends:
    `$patch: replace|delete|merge`, `$setElementOrder/<list>`, `$retainKeys`,
    `$deleteFromPrimitiveList/<list>`."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be an object")
    return _smp_map(target if isinstance(target, dict) else {}, patch, ())


def _smp_map(target: dict[str, JSON], patch: dict[str, JSON], path: tuple[str, ...]) -> JSON:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise bad_request(f"unknown patch type: {directive!r}")
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, path, key)
        else:
            result[key] = copy.deepcopy(value)
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = _reorder(result[field], order, _merge_key(path, field))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(
    current: list[JSON], patch: list[JSON], path: tuple[str, ...], field: str
) -> list[JSON]:
    if field in _PRIMITIVE_MERGE_LISTS:
        merged = list(current)
        merged.extend(item for item in patch if item not in merged)
        return merged
    key = _merge_key(path, field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    if any(item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if item.get("$patch") != "replace"]
    result = copy.deepcopy(current)
    for item in patch:
        position = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append(_smp_map({}, item, (*path, field)))
        else:
            result[position] = _smp_map(result[position], item, (*path, field))
    return result


def _reorder(items: list[JSON], order: list[JSON], key: str | None) -> list[JSON]:
    """Honour `$setElementOrder`: items named in the order first, in that order."""

    def identity(item: JSON) -> JSON:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    rank = {repr(ident): i for i, ident in enumerate(wanted)}
    return sorted(items, key=lambda item: rank.get(repr(identity(item)), len(rank)))
