"""The CRD generated from the models.

Covers: manifests/crd.yaml equals `lrsweep crd`; the schema is structural (no $ref, anyOf,
title, or additionalProperties beside properties); names, short name, category, status
subresource and printer columns; CEL rules for cross-field checks and immutability; bounds
that refuse at apply a name too long for its trial pods and rates that are not positive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lrsweep.api import MAX_NAME_LENGTH
from lrsweep.crd import build_crd, render_crd

ROOT = Path(__file__).resolve().parents[2]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_committed_crd_equals_the_generated_one() -> None:
    assert (ROOT / "manifests" / "crd.yaml").read_text() == render_crd(), (
        "manifests/crd.yaml is stale: run `lrsweep crd > manifests/crd.yaml`"
    )


def test_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node
        assert "anyOf" not in node
        assert "title" not in node
        assert not ("properties" in node and "additionalProperties" in node)


def test_names_scope_and_printer_columns() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["lrs"]
    assert names["categories"] == ["ml"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Best LR", "Score", "Trials", "Reason", "Age"]


def test_cel_rules_check_bounds_and_freeze_the_spec() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    search_rules = [v["rule"] for v in spec["properties"]["search"]["x-kubernetes-validations"]]
    assert "self.min < self.max" in search_rules
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"


def test_the_crd_refuses_a_name_too_long_for_its_trial_pods() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    metadata = schema["properties"]["metadata"]
    assert set(metadata["properties"]) == {"name"}  # all Kubernetes lets a CRD restrict
    assert metadata["properties"]["name"]["maxLength"] == MAX_NAME_LENGTH


def test_the_crd_refuses_rates_in_values_that_are_not_positive() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    values = spec["properties"]["search"]["properties"]["values"]
    assert values["items"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_pod_template_keeps_unknown_fields() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = spec["properties"]["trial"]["properties"]["template"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True


def test_crd_is_one_yaml_document() -> None:
    assert yaml.safe_load(render_crd())["kind"] == "CustomResourceDefinition"
