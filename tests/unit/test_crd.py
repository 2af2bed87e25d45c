"""The CRD generated from the models.

Covers: manifests/crd.yaml equals `lrsweep crd`; the schema is structural (no $ref, anyOf,
title, or additionalProperties beside properties); names, short name, category, status
subresource and printer columns; CEL rules for cross-field checks and immutability; bounds
that refuse at apply a name too long for its trial pods and rates that are not positive;
every property described (`kubectl explain`), root metadata restricting nothing but the name
(all the API server accepts); conditions as metav1.Condition (a list map keyed on type,
lastTransitionTime a required date-time with no default); no format a default breaks; the
statuses the operator writes, timestamps included, valid against the status schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lrsweep.api import API_VERSION, KIND, MAX_NAME_LENGTH, LRSweepStatus, TrialPhase, Verdict
from lrsweep.crd import build_crd, render_crd
from lrsweep.engine.rangetest import RangeTestResult
from lrsweep.engine.status import summarize
from lrsweep.engine.strategies import Best
from lrsweep.engine.sweep import Decision
from lrsweep.engine.trials import TrialRecord
from lrsweep.runtime.clock import timestamp
from tests.harness.validation import Validator

ROOT = Path(__file__).resolve().parents[2]


# RFC 3339 (the API server's `date-time` format); `datetime.fromisoformat` takes more.
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _root() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


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


def _budget_errors(budget: dict[str, Any]) -> list[str]:
    schema = _root()["properties"]["spec"]["properties"]["budget"]
    return [message for _, message in Validator(schema).validate(budget, None)]


def test_the_crd_leaves_eval_interval_and_first_rung_unset_to_follow_steps() -> None:
    budget = _root()["properties"]["spec"]["properties"]["budget"]["properties"]
    assert "default" not in budget["evalEvery"]
    assert "default" not in budget["minSteps"]
    assert _budget_errors({"steps": 600}) == []


def test_the_crd_still_checks_an_eval_interval_and_first_rung_that_are_set() -> None:
    assert any(
        "budget.minSteps must not exceed budget.steps" in message
        for message in _budget_errors({"steps": 100, "minSteps": 300})
    )
    assert any(
        "budget.steps must be at least 2 x budget.evalEvery" in message
        for message in _budget_errors({"steps": 100, "evalEvery": 60})
    )


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


def _properties(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property below `node`, through items and additionalProperties, with its path."""
    if not isinstance(node, dict):
        return
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _properties(sub, f"{path}.{name}")
    yield from _properties(node.get("items"), f"{path}[]")
    yield from _properties(node.get("additionalProperties"), f"{path}{{}}")


def _bad_times(schema: Any, value: Any, path: str) -> Iterator[str]:
    """Values at `date-time` nodes of `schema` that are not RFC 3339 times."""
    if not isinstance(schema, dict) or value is None:
        return
    if schema.get("format") == "date-time" and not RFC3339.match(str(value)):
        yield f"{path}: {value!r}"
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = (schema.get("properties") or {}).get(key, extra)
            yield from _bad_times(sub, item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_times(schema.get("items"), item, f"{path}[{index}]")


def test_every_property_is_described_for_kubectl_explain() -> None:
    root = _root()
    undescribed = [
        path
        for path, node in _properties(root, "lrsweep")
        if path != "lrsweep.metadata" and not str(node.get("description", "")).strip()
    ]
    assert undescribed == []
    for section in ("spec", "status"):
        assert root["properties"][section]["description"]
    status = root["properties"]["status"]["properties"]
    assert status["trials"]["additionalProperties"]["description"]
    assert status["conditions"]["items"]["description"]


def test_descriptions_are_one_paragraph() -> None:
    """A docstring's source line breaks do not reach `kubectl explain`."""
    wrapped = [n["description"] for n in _walk(_root()) if "\n" in str(n.get("description"))]
    assert wrapped == []


def test_root_metadata_restricts_the_name_and_says_nothing_else() -> None:
    """The API server refuses a CRD whose root metadata schema carries anything but name and
    generateName restrictions, a description included."""
    metadata = _root()["properties"]["metadata"]
    assert set(metadata) == {"type", "properties"}
    assert set(metadata["properties"]) == {"name"}


def test_conditions_are_a_list_map_keyed_on_type_as_metav1_condition() -> None:
    conditions = _root()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    # A map key must be required (or defaulted), and what the operator always writes is.
    assert item["required"] == ["type", "status", "reason", "lastTransitionTime"]
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def test_times_are_date_times_and_no_default_breaks_a_format() -> None:
    """A default the format refuses ("" for a date-time) makes the API server refuse the CRD."""
    status = _root()["properties"]["status"]["properties"]
    time = status["conditions"]["items"]["properties"]["lastTransitionTime"]
    assert time == {"description": time["description"], "format": "date-time", "type": "string"}
    for name in ("startTime", "completionTime"):
        assert status[name]["format"] == "date-time"
        assert status[name]["nullable"] is True
    assert [n for n in _walk(_root()) if "format" in n and "default" in n] == []


def _decision(*, done: bool) -> Decision:
    """A sweep past its range test, with a trial that ran its budget and one that is queued."""
    trials = (
        TrialRecord("t000", 0.0, 0, mode="range-test", phase=TrialPhase.SUCCEEDED, queued=False),
        TrialRecord(
            "t001",
            0.01,
            0,
            phase=TrialPhase.SUCCEEDED,
            attempts=1,
            queued=False,
            step=100,
            rungs={30: 0.9, 100: 0.5},
            verdict=Verdict.CONVERGING,
            reason="levelled off",
        ),
        TrialRecord("t002", 0.1, 0, round=1),
    )
    return Decision(
        records=trials,
        launches=(),
        stops=(),
        promotions=(),
        done=done,
        best=Best(0.01, 0.5, "t001") if done else None,
        range_result=RangeTestResult(0.01, 0.02, 1.0, 0.05, ceiling=None, descent=0.4),
        message="best rate 0.01" if done else "1 trial running",
        at_edge="the best rate is the lowest tried" if done else "",
    )


def test_statuses_the_operator_writes_are_valid_timestamps_included() -> None:
    """What `engine.status.summarize` writes as a sweep runs, stalls and ends passes the
    status schema, and every date-time in it is an RFC 3339 time (the API server checks
    formats; the test cluster does not)."""
    schema = _root()
    status = LRSweepStatus()
    for done, stuck in ((False, ()), (False, ("t002: 0/1 nodes are available",)), (True, ())):
        status = summarize(_decision(done=done), status, stuck, now=timestamp(), generation=1)
        written = status.model_dump(mode="json")
        sweep = {"apiVersion": API_VERSION, "kind": KIND, "status": written}
        assert Validator({**schema, "required": []}).validate(sweep, None) == []
        assert list(_bad_times(schema, sweep, "")) == []
    conditions = status.model_dump(mode="json")["conditions"]
    assert {c["type"] for c in conditions} == {
        "Ready",
        "Complete",
        "TrialsSchedulable",
        "Bracketed",
    }
    assert len(conditions) == 4  # one per type, as the list map wants
    assert all(RFC3339.match(c["lastTransitionTime"]) for c in conditions)


def test_an_empty_time_is_what_the_date_time_check_refuses() -> None:
    assert list(_bad_times(_root(), {"status": {"startTime": ""}}, "")) == [".status.startTime: ''"]
