"""`meta.k8s.io/v1 Table` rendering, which `kubectl get` asks for.

Custom resources get their CRD's `additionalPrinterColumns` (evaluated with the JSONPath
subset printer columns use), or NAME + AGE when the CRD declares none, as the API server does.
A few built-in kinds get the columns kubectl users know; the rest get NAME + AGE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tests.harness.meta import JSON, Obj, human_duration, now, parse_timestamp
from tests.harness.resources import ResourceType

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)
      | \[(?P<index>-?\d+)\]
      | \['(?P<quoted>[^']*)'\]
      | \[\?\(@\.(?P<filter_path>[A-Za-z0-9_.-]+)\s*==\s*(?P<filter_value>"[^"]*"|'[^']*'|[^)]*)\)\]
      | \[\*\]
    """,
    re.VERBOSE,
)


def jsonpath(obj: JSON, path: str) -> list[JSON]:
    """Evaluate `.a.b[0]['k'][?(@.type=="Ready")].status[*]`; returns every match."""
    expression = path.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1]
    expression = expression.removeprefix("$")
    nodes: list[JSON] = [obj]
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match:
            return []
        position = match.end()
        following: list[JSON] = []
        for node in nodes:
            if match.group("field") is not None or match.group("quoted") is not None:
                key = match.group("field") or match.group("quoted")
                if isinstance(node, dict) and key in node:
                    following.append(node[key])
            elif match.group("index") is not None:
                index = int(match.group("index"))
                if isinstance(node, list) and -len(node) <= index < len(node):
                    following.append(node[index])
            elif match.group("filter_path") is not None:
                wanted = match.group("filter_value").strip().strip("\"'")
                for item in node if isinstance(node, list) else []:
                    found = jsonpath(item, "." + match.group("filter_path"))
                    if found and str(found[0]) == wanted:
                        following.append(item)
            elif isinstance(node, list):
                following.extend(node)
            elif isinstance(node, dict):
                following.extend(node.values())
        nodes = following
    return nodes


def _age(obj: Obj) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration((now() - parse_timestamp(created)).total_seconds())


def _cell(value: JSON, column_type: str) -> JSON:
    if column_type == "date" and isinstance(value, str):
        try:
            return human_duration((now() - parse_timestamp(value)).total_seconds())
        except ValueError:
            return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def _column(name: str, column_type: str = "string", description: str = "", **extra: Any) -> Obj:
    fmt = "name" if name == "Name" else ""
    return {
        "name": name,
        "type": column_type,
        "format": fmt,
        "description": description,
        "priority": 0,
        **extra,
    }


def _pod_status(pod: Obj) -> str:
    """The STATUS kubectl prints for a pod: a reason beats container states beats the phase."""
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    if status.get("reason"):
        return str(status["reason"])
    reason = str(status.get("phase") or "Pending")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = (
                state["terminated"].get("reason")
                or f"ExitCode:{state['terminated'].get('exitCode')}"
            )
    return reason


def _pod_row(pod: Obj) -> list[JSON]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    containers = pod.get("spec", {}).get("containers") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(containers)}",
        _pod_status(pod),
        restarts,
        _age(pod),
        pod.get("status", {}).get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
    ]


def _status_count(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _node_row(node: Obj) -> list[JSON]:
    conditions = node.get("status", {}).get("conditions") or []
    ready: Obj = next((c for c in conditions if c.get("type") == "Ready"), {})
    return [
        node["metadata"]["name"],
        "Ready" if ready.get("status") == "True" else "NotReady",
        "<none>",
        _age(node),
        node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
    ]


_BUILTIN: dict[str, tuple[list[Obj], Callable[[Obj], list[JSON]]]] = {
    "Pod": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "string"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
        ],
        _pod_row,
    ),
    "Node": (
        [_column("Name"), _column("Status"), _column("Roles"), _column("Age"), _column("Version")],
        _node_row,
    ),
    "Namespace": (
        [_column("Name"), _column("Status"), _column("Age")],
        lambda ns: [ns["metadata"]["name"], ns.get("status", {}).get("phase", ""), _age(ns)],
    ),
    "ConfigMap": (
        [_column("Name"), _column("Data", "integer"), _column("Age")],
        lambda cm: [
            cm["metadata"]["name"],
            len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            _age(cm),
        ],
    ),
    "Event": (
        [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Message"),
        ],
        lambda ev: [
            _age(
                {
                    "metadata": {
                        "creationTimestamp": ev.get("lastTimestamp")
                        or ev.get("eventTime")
                        or ev["metadata"].get("creationTimestamp")
                    }
                }
            ),
            ev.get("type", ""),
            ev.get("reason", ""),
            f"{str(ev.get('involvedObject', {}).get('kind', '')).lower()}/"
            f"{ev.get('involvedObject', {}).get('name', '')}",
            ev.get("message", ""),
        ],
    ),
    "Deployment": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
        ],
        lambda d: [
            d["metadata"]["name"],
            f"{_status_count(d, 'readyReplicas')}/{(d.get('spec') or {}).get('replicas', 1)}",
            _status_count(d, "updatedReplicas"),
            _status_count(d, "availableReplicas"),
            _age(d),
        ],
    ),
    "ReplicaSet": (
        [
            _column("Name"),
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _column("Age"),
        ],
        lambda rs: [
            rs["metadata"]["name"],
            (rs.get("spec") or {}).get("replicas", 1),
            _status_count(rs, "replicas"),
            _status_count(rs, "readyReplicas"),
            _age(rs),
        ],
    ),
    "CustomResourceDefinition": (
        [_column("Name"), _column("Created At", "date")],
        lambda crd: [crd["metadata"]["name"], crd["metadata"].get("creationTimestamp")],
    ),
}


def _custom_columns(rtype: ResourceType) -> tuple[list[Obj], Callable[[Obj], list[JSON]]]:
    declared = list(rtype.printer_columns) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    columns = [_column("Name", description="Name must be unique within a namespace.")]
    for spec in declared:
        columns.append(
            _column(
                spec["name"],
                spec.get("type", "string"),
                spec.get("description", ""),
                priority=spec.get("priority", 0),
            )
        )
        if spec.get("format"):
            columns[-1]["format"] = spec["format"]

    def row(obj: Obj) -> list[JSON]:
        cells: list[JSON] = [obj["metadata"]["name"]]
        for spec in declared:
            found = jsonpath(obj, spec["jsonPath"])
            cells.append(_cell(found[0], spec.get("type", "string")) if found else None)
        return cells

    return columns, row


def _partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def to_table(
    rtype: ResourceType, items: list[Obj], resource_version: str, include_object: str = "Metadata"
) -> Obj:
    if rtype.custom:
        columns, row = _custom_columns(rtype)
    elif rtype.kind in _BUILTIN:
        columns, row = _BUILTIN[rtype.kind]
    else:
        columns, row = [_column("Name"), _column("Age")], lambda o: [o["metadata"]["name"], _age(o)]
    rows = []
    for obj in items:
        entry: Obj = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = _partial_metadata(obj)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
