"""Custom resources against their CRD's `openAPIV3Schema`: defaulting, pruning, validation.

Covers the structural-schema keywords (type, properties, required, enum, minimum/maximum and
their exclusive forms, min/maxLength, pattern, min/maxItems, min/maxProperties, items,
additionalProperties, nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
x-kubernetes-embedded-resource, x-kubernetes-list-type set/map, allOf/anyOf/oneOf/not) and
CEL `x-kubernetes-validations` (`self`, and `oldSelf` transition rules on updates), evaluated
with cel-python. Errors carry the API server's field paths and wording.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from typing import Any

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from tests.harness.meta import JSON, Obj

FieldError = tuple[str, str]
_MISSING = object()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: JSON) -> str:
    """Render a value the way field errors do: strings quoted, compounds by type name."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) or value is None:
        return f'"{_type_name(value)}"'
    return str(value)


def _type_ok(expected: str, value: JSON) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def apply_defaults(schema: Obj, value: JSON) -> JSON:
    """Fill in `default`s of absent properties, recursively (before validation, as the server)."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if key not in (schema.get("properties") or {}):
                    value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def prune(schema: Obj, value: JSON, path: str = "", *, root: bool = False) -> list[str]:
    """Drop fields the schema does not declare; returns their paths (for strict/warn modes)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return []
    dropped: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            child = _join(path, key)
            if keep_meta and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in properties:
                dropped += prune(properties[key], value[key], child)
            elif isinstance(extra, dict):
                dropped += prune(extra, value[key], child)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            elif properties or schema.get("type") == "object":
                del value[key]
                dropped.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            dropped += prune(schema["items"], item, f"{path}[{index}]")
    return dropped


class Validator:
    """Validates one version's schema; CEL programs are compiled once per rule."""

    def __init__(self, schema: Obj) -> None:
        self.schema = schema

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        errors: list[FieldError] = []
        body = {k: v for k, v in obj.items() if k != "metadata"}
        old_body = {k: v for k, v in old.items() if k != "metadata"} if old is not None else None
        schema = dict(self.schema)
        schema["properties"] = {
            k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"
        }
        errors.extend(self._check(schema, body, old_body, ""))
        return errors

    def _check(self, schema: Obj, value: JSON, old: JSON, path: str) -> Iterator[FieldError]:
        if value is None:
            if not schema.get("nullable") and schema.get("type"):
                yield (
                    path,
                    f'Invalid value: "null": {path} in body must be of type '
                    f'{schema["type"]}: "null"',
                )
            return
        expected = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or _type_ok("integer", value)):
                yield (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must be of type "
                    f"integer or string: {_show(value)}",
                )
                return
        elif expected and not _type_ok(expected, value):
            yield (
                path,
                f'Invalid value: "{_type_name(value)}": {path} in body must be of type '
                f'{expected}: "{_type_name(value)}"',
            )
            return
        yield from self._scalar(schema, value, path)
        yield from self._combinators(schema, value, old, path)
        if isinstance(value, dict):
            yield from self._object(schema, value, old if isinstance(old, dict) else None, path)
        elif isinstance(value, list):
            yield from self._array(schema, value, path)
        yield from self._cel(schema, value, old, path)

    def _scalar(self, schema: Obj, value: JSON, path: str) -> Iterator[FieldError]:
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_show(item) for item in schema["enum"])
            yield (path, f"Unsupported value: {_show(value)}: supported values: {supported}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema:
                if schema.get("exclusiveMinimum") is True and value <= schema["minimum"]:
                    yield (
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be "
                        f"greater than {schema['minimum']}",
                    )
                elif value < schema["minimum"]:
                    yield (
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be "
                        f"greater than or equal to {schema['minimum']}",
                    )
            if "maximum" in schema:
                if schema.get("exclusiveMaximum") is True and value >= schema["maximum"]:
                    yield (
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be "
                        f"less than {schema['maximum']}",
                    )
                elif value > schema["maximum"]:
                    yield (
                        path,
                        f"Invalid value: {_show(value)}: {path} in body should be "
                        f"less than or equal to {schema['maximum']}",
                    )
            if "multipleOf" in schema and (value / schema["multipleOf"]) % 1:
                yield (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be a "
                    f"multiple of {schema['multipleOf']}",
                )
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                yield (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should be at "
                    f"least {schema['minLength']} chars long",
                )
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                yield (path, f"Too long: may not be more than {schema['maxLength']} bytes")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                yield (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body should match "
                    f"'{schema['pattern']}'",
                )

    def _combinators(self, schema: Obj, value: JSON, old: JSON, path: str) -> Iterator[FieldError]:
        for sub in schema.get("allOf") or []:
            yield from self._check(sub, value, old, path)
        if "anyOf" in schema and not any(
            not list(self._check(sub, value, old, path)) for sub in schema["anyOf"]
        ):
            yield (
                path,
                f"Invalid value: {_show(value)}: {path} in body must validate "
                "at least one schema (anyOf)",
            )
        if "oneOf" in schema:
            passing = sum(not list(self._check(sub, value, old, path)) for sub in schema["oneOf"])
            if passing != 1:
                yield (
                    path,
                    f"Invalid value: {_show(value)}: {path} in body must validate "
                    "one and only one schema (oneOf)",
                )
        if "not" in schema and not list(self._check(schema["not"], value, old, path)):
            yield (
                path,
                f"Invalid value: {_show(value)}: {path} in body must not validate the schema (not)",
            )

    def _object(self, schema: Obj, value: Obj, old: Obj | None, path: str) -> Iterator[FieldError]:
        for key in schema.get("required") or []:
            if key not in value:
                yield (_join(path, key), "Required value")
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                old_item = old.get(key, _MISSING) if old is not None else _MISSING
                yield from self._check(sub, item, old_item, _join(path, key))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            yield (
                path,
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minProperties']} properties",
            )
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            yield (
                path,
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )

    def _array(self, schema: Obj, value: list[JSON], path: str) -> Iterator[FieldError]:
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield (
                path,
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minItems']} items",
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield (path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                # List items are not correlated with the old list: no transition rules there.
                yield from self._check(items, item, _MISSING, f"{path}[{index}]")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set" or schema.get("uniqueItems"):
            seen: list[JSON] = []
            for index, item in enumerate(value):
                if item in seen:
                    yield (f"{path}[{index}]", f"Duplicate value: {_show(item)}")
                seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[tuple[JSON, ...]] = []
            for index, item in enumerate(value):
                ident = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if ident in seen_keys:
                    yield (f"{path}[{index}]", f"Duplicate value: {_show(item)}")
                seen_keys.append(ident)

    def _cel(self, schema: Obj, value: JSON, old: JSON, path: str) -> Iterator[FieldError]:
        for rule in schema.get("x-kubernetes-validations") or []:
            expression = rule.get("rule", "")
            transition = re.search(r"\boldSelf\b", expression) is not None
            if transition and old is _MISSING and not rule.get("optionalOldSelf"):
                continue
            where = path
            if rule.get("fieldPath"):
                where = (
                    path + rule["fieldPath"]
                    if rule["fieldPath"].startswith(".")
                    else _join(path, rule["fieldPath"])
                )
            activation: dict[str, Any] = {"self": to_cel(value, schema)}
            if transition:
                activation["oldSelf"] = None if old is _MISSING else to_cel(old, schema)
            try:
                result: object = _program(expression).evaluate(activation)
            except (CELEvalError, CELParseError, TypeError, ValueError) as exc:
                yield (where, f"Invalid value: {_show(value)}: {exc.args[0] if exc.args else exc}")
                continue
            if isinstance(result, CELEvalError):
                yield (where, f"Invalid value: {_show(value)}: {result.args[0]}")
            elif result != celtypes.BoolType(True):
                message = rule.get("message") or f"failed rule: {expression}"
                yield (where, f"Invalid value: {_show(value)}: {message}")


@functools.cache
def _program(expression: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def to_cel(value: JSON, schema: Obj) -> Any:
    """JSON -> CEL values, typed by the schema: `number` fields are doubles even if integral."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int) and schema.get("type") != "number":
        return celtypes.IntType(value)
    if isinstance(value, int | float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return celtypes.ListType([to_cel(item, items or {}) for item in value])
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    return celtypes.MapType(
        {
            celtypes.StringType(key): to_cel(
                item, properties.get(key, extra if isinstance(extra, dict) else {})
            )
            for key, item in value.items()
        }
    )
