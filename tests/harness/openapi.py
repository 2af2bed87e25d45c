"""A minimal OpenAPI v3 description: enough for kubectl's default flags.

kubectl (1.27+) decides per kind whether the server validates fields itself by looking for a
`fieldValidation` query parameter on the kind's PATCH operation in `/openapi/v3/<gv>`; when it
finds one it sends `fieldValidation=Strict` and skips client-side schema validation, which
would otherwise need the full schemas. The PATCH operations list no strategic-merge request
body, so `kubectl apply` computes strategic merge patches from its compiled-in types.
Custom resources get their CRD schema under `components.schemas` for `kubectl explain`.
"""

from __future__ import annotations

import hashlib
import json

from tests.harness.meta import Obj
from tests.harness.resources import Registry, ResourceType

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _schema_name(rtype: ResourceType) -> str:
    reversed_group = (
        ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    )
    return f"{reversed_group}.{rtype.version}.{rtype.kind}"


def _operation(rtype: ResourceType, action: str, patch_types: list[str]) -> Obj:
    operation: Obj = {
        "operationId": f"{action}{rtype.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMETERS
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rtype.group,
            "version": rtype.version,
            "kind": rtype.kind,
        },
    }
    if patch_types:
        operation["requestBody"] = {
            "content": {content: {"schema": {"type": "object"}} for content in patch_types},
            "required": True,
        }
    return operation


def group_version_document(registry: Registry, group: str, version: str) -> Obj | None:
    listing = registry.resource_list(group, version)
    if listing is None:
        return None
    paths: Obj = {}
    schemas: Obj = {}
    prefix = "/" + _gv_path(group, version)
    for entry in listing["resources"]:
        if "/" in entry["name"]:
            continue
        rtype = registry.lookup(group, version, entry["name"])
        if rtype is None:
            continue
        # No strategic-merge body: kubectl then uses its built-in patch metadata.
        patch_types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        scope = "/namespaces/{namespace}" if rtype.namespaced else ""
        paths[f"{prefix}{scope}/{rtype.plural}/{{name}}"] = {
            "get": _operation(rtype, "get", []),
            "put": _operation(rtype, "put", []),
            "patch": _operation(rtype, "patch", patch_types),
            "delete": _operation(rtype, "delete", []),
        }
        paths[f"{prefix}{scope}/{rtype.plural}"] = {
            "get": _operation(rtype, "list", []),
            "post": _operation(rtype, "post", []),
        }
        if rtype.validator is not None:
            schema = dict(rtype.validator.schema)
            schema["x-kubernetes-group-version-kind"] = [
                {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
            ]
            schemas[_schema_name(rtype)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (LRSweep test cluster)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root_document(registry: Registry) -> Obj:
    """`/openapi/v3`: one entry per group-version, with a content hash for client caches."""
    paths: Obj = {}
    group_versions = {(rtype.group, rtype.version) for rtype in registry.all_types()}
    for group, version in sorted(group_versions):
        document = group_version_document(registry, group, version)
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}
