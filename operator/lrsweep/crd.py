"""The LRSweep CustomResourceDefinition, generated from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3.0 schema: no $ref, nullable instead of
anyOf-with-null, boolean exclusiveMinimum, no additionalProperties next to properties. The
models stay the single source of truth; this module only translates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from lrsweep import api

# Cross-field rules the API server enforces at `kubectl apply` (CEL). The operator checks
# the same conditions through the models, for clusters older than CEL validation.
VALIDATIONS: dict[str, list[dict[str, str]]] = {
    "search": [
        {"rule": "self.min < self.max", "message": "search.min must be below search.max"},
    ],
    "budget": [
        {
            "rule": "!has(self.evalEvery) || self.evalEvery <= self.steps",
            "message": "budget.evalEvery must not exceed budget.steps",
        },
        {
            "rule": "!has(self.minSteps) || self.minSteps <= self.steps",
            "message": "budget.minSteps must not exceed budget.steps",
        },
        {
            "rule": "!has(self.evalEvery) || self.steps >= 2 * self.evalEvery",
            "message": "budget.steps must be at least 2 x budget.evalEvery: a trial is judged "
            "from at least 3 evaluations",
        },
    ],
    "spec": [
        {
            "rule": "self == oldSelf",
            "message": "spec is immutable once created: delete the LRSweep and create a new one",
        },
    ],
}

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Best LR", "type": "number", "jsonPath": ".status.bestLearningRate"},
    {"name": "Score", "type": "number", "jsonPath": ".status.bestScore"},
    {"name": "Trials", "type": "integer", "jsonPath": ".status.trialCount"},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why the sweep is where it is (Ready's reason); its message says more.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_DROP = {"title", "additionalProperties", "$defs"}


def structural(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one pydantic JSON-schema node into a structural OpenAPI v3.0 node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    any_of = schema.get("anyOf")
    if any_of is not None:
        others = [s for s in any_of if s.get("type") != "null"]
        if len(others) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            node = structural({**others[0], **rest}, defs)
            if len(others) < len(any_of):
                node["nullable"] = True
            return node
        raise ValueError(f"cannot express a union of {len(others)} types structurally")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "description":
            # A docstring's line breaks are its source's wrapping, not paragraphs.
            out[key] = " ".join(value.split())
        else:
            out[key] = value
    extra = schema.get("additionalProperties")
    if out.get("type") == "object" and "properties" not in out:
        if isinstance(extra, Mapping) and extra:
            out["additionalProperties"] = structural(extra, defs)
        else:
            # A free-form object (the pod template): keep whatever the user wrote.
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return structural(raw, raw.get("$defs", {}))


def spec_schema() -> dict[str, Any]:
    schema = _schema(api.LRSweepSpec)
    for name, rules in VALIDATIONS.items():
        target = schema if name == "spec" else schema["properties"][name]
        target["x-kubernetes-validations"] = rules
    return schema


def status_schema() -> dict[str, Any]:
    return _schema(api.LRSweepStatus)


def metadata_schema() -> dict[str, Any]:
    """The longest sweep name (Kubernetes lets a CRD restrict no other metadata field but
    generateName). Not the model's pattern: the API server checks a name's characters itself,
    and a name with dots, which `lrsweep run` refuses, runs on a cluster."""
    name = _schema(api.Metadata)["properties"]["name"]
    bounds = {key: value for key, value in name.items() if key != "pattern"}
    # Nothing else, not even a description: the API server refuses a CRD whose root metadata
    # schema says more than name and generateName (and publishes ObjectMeta's own).
    return {"type": "object", "properties": {"name": bounds}}


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": [api.SHORT_NAME],
                "categories": [api.CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A search for the learning rate of a training job.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": f"The versioned schema of this object: "
                                    f"{api.API_VERSION}.",
                                },
                                "kind": {
                                    "type": "string",
                                    "description": f"The REST resource this object represents: "
                                    f"{api.KIND}.",
                                },
                                "metadata": metadata_schema(),
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed in manifests/crd.yaml and charts/lrsweep/crds/."""
    header = "# Generated by `lrsweep crd` from operator/lrsweep/api.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
