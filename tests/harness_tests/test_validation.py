"""Custom resources validated against their CRD's openAPIV3Schema (official client).

Covers: required fields, types, enum, minimum/maximum, pattern, schema defaults, pruning
of unknown fields (silently by default, refused with fieldValidation=Strict),
preserve-unknown-fields subtrees, a CEL rule on `self`, a CEL transition rule on `oldSelf`
(checked on update only), and several errors reported together as one 422.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness_tests.conftest import GROUP, VERSION, ApiClient, CustomApi, widget

Custom = CustomApi


def _refusal(custom: Custom, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "widgets", body)
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(str(caught.value.body))["message"]
    return message


def test_missing_required_field_is_refused(custom: Custom, kube_namespace: str) -> None:
    body = widget("req")
    del body["spec"]["size"]
    assert "spec.size: Required value" in _refusal(custom, kube_namespace, body)


def test_wrong_type_is_refused(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("typ", size="three"))
    assert "spec.size in body must be of type integer" in message


def test_value_outside_enum_is_refused(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("enum", color="green"))
    assert 'spec.color: Unsupported value: "green"' in message


def test_value_above_maximum_is_refused(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("max", size=11))
    assert "spec.size in body should be less than or equal to 10" in message


def test_value_below_minimum_is_refused(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("min", size=0))
    assert "spec.size in body should be greater than or equal to 1" in message


def test_string_not_matching_pattern_is_refused(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("pat", label="Not-Lower"))
    assert "spec.label in body should match '^[a-z]+$'" in message


def test_several_errors_are_reported_together(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("many", size=0, color="green"))
    assert "spec.size" in message
    assert "spec.color" in message


def test_cel_rule_on_self_is_enforced(custom: Custom, kube_namespace: str) -> None:
    message = _refusal(custom, kube_namespace, widget("cel", min=0.5, max=0.1))
    assert "min must be below max" in message


def test_schema_defaults_are_filled_in(custom: Custom, kube_namespace: str) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", widget("dflt")
    )
    assert created["spec"]["min"] == 0.001
    assert created["spec"]["max"] == 1


def test_unknown_fields_are_pruned(custom: Custom, kube_namespace: str) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", widget("prune", bogus=True)
    )
    assert "bogus" not in created["spec"]


def test_unknown_fields_are_refused_with_strict_field_validation(
    api_client: ApiClient, kube_namespace: str, widget_crd: str
) -> None:
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            "widgets",
            widget("strict", bogus=True),
            field_validation="Strict",
        )
    assert caught.value.status == 400
    assert 'unknown field "spec.bogus"' in json.loads(str(caught.value.body))["message"]


def test_preserve_unknown_fields_keeps_arbitrary_content(
    custom: Custom, kube_namespace: str
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", widget("keep", extra={"any": {"thing": [1]}})
    )
    assert created["spec"]["extra"] == {"any": {"thing": [1]}}


def test_cel_transition_rule_is_checked_on_update(custom: Custom, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", widget("shrink", size=5)
    )
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, "widgets", "shrink", {"spec": {"size": 4}}
        )
    assert caught.value.status == 422
    assert "size may not shrink" in str(caught.value.body)


def test_cel_transition_rule_allows_a_valid_update(custom: Custom, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", widget("grow", size=5)
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, "widgets", "grow", {"spec": {"size": 6}}
    )
    assert patched["spec"]["size"] == 6
