"""Label selectors and field selectors, parsed the way the API server parses query strings."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tests.harness.meta import Obj, bad_request

_SET_OP = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_OP = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    requirements = []
    for part in _split_top_level(text):
        eq = _EQ_OP.match(part)
        if eq:
            op = "!=" if eq.group(2) == "!=" else "="
            requirements.append(Requirement(eq.group(1), op, (eq.group(3),)))
            continue
        setop = _SET_OP.match(part)
        if not setop:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        negated, key, op, values = setop.groups()
        if op:
            if negated:
                raise bad_request(f"unable to parse requirement: {part.strip()!r}")
            items = tuple(v.strip() for v in values.split(",") if v.strip())
            requirements.append(Requirement(key, op, items))
        else:
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
    return requirements


def labels_match(requirements: list[Requirement], obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(req.matches(labels) for req in requirements)


_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def selector_requirements(selector: Obj) -> list[Requirement]:
    """A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`) as requirements."""
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        op = _EXPRESSION_OPS.get(expression.get("operator", ""))
        if op is None:
            raise bad_request(f"{expression.get('operator')!r} is not a valid selector operator")
        values = tuple(str(v) for v in expression.get("values") or ())
        requirements.append(Requirement(expression["key"], op, values))
    return requirements


def selector_matches(selector: Obj, labels: Mapping[str, str]) -> bool:
    """Whether a `metav1.LabelSelector` selects these labels (an empty one selects all)."""
    return all(req.matches(labels) for req in selector_requirements(selector))


FieldGetter = Callable[[Obj], str]


def _path_getter(path: str) -> FieldGetter:
    keys = path.split(".")

    def get(obj: Obj) -> str:
        value: object = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


def field_getters(paths: list[str]) -> dict[str, FieldGetter]:
    return {path: _path_getter(path) for path in paths}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negated: bool
    value: str


def parse_field_selector(
    text: str | None, supported: Mapping[str, FieldGetter]
) -> list[tuple[FieldRequirement, FieldGetter]]:
    if not text:
        return []
    parsed = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.match(r"^([A-Za-z0-9._\[\]'-]+)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        getter = supported.get(field)
        if getter is None:
            raise bad_request(f'field label not supported: "{field}"')
        parsed.append((FieldRequirement(field, op == "!=", value), getter))
    return parsed


def fields_match(requirements: list[tuple[FieldRequirement, FieldGetter]], obj: Obj) -> bool:
    for requirement, getter in requirements:
        equal = getter(obj) == requirement.value
        if equal == requirement.negated:
            return False
    return True
