"""API semantics on top of the store: create/get/list/replace/patch/delete with resourceVersion
conflicts, generation, the status subresource, finalizers, graceful pod deletion, CRDs, and
validation. The HTTP layer (server.py), the kubelet and the controllers all go through here.
"""

from __future__ import annotations

import contextlib
import copy
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from tests.harness.meta import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ApiError,
    Obj,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    timestamp,
)
from tests.harness.patching import json_patch, merge_patch, strategic_merge_patch
from tests.harness.resources import Registry, ResourceType
from tests.harness.selectors import (
    field_getters,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_matches,
)
from tests.harness.store import Store
from tests.harness.validation import apply_defaults, prune

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
# apps/v1 kinds whose pod template and selector the API server defaults and validates.
WORKLOAD_KINDS = ("Deployment", "ReplicaSet")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Pod spec fields an update may change (everything else is immutable once created).
_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Api:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    # Reads

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rtype.storage_key, namespace if rtype.namespaced else "", name)
        if obj is None:
            raise not_found(rtype.plural, name, rtype.group)
        return self.as_version(rtype, obj)

    def find(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        obj = self.store.get(rtype.storage_key, namespace if rtype.namespaced else "", name)
        return self.as_version(rtype, obj) if obj is not None else None

    def view(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        """The stored object without a deep copy, for reads that change no nested value: its
        top level is the caller's (to set or replace a field), what lies below is the
        store's, which must stay as it is."""
        obj = self.store.peek_one(rtype.storage_key, namespace if rtype.namespaced else "", name)
        return self.as_version(rtype, dict(obj)) if obj is not None else None

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        matches = self.matcher(rtype, label_selector, field_selector)
        return [
            self.as_version(rtype, copy.deepcopy(obj))
            for obj in self.scan(rtype, namespace)
            if matches(obj)
        ]

    def scan(self, rtype: ResourceType, namespace: str | None) -> list[Obj]:
        """The stored objects themselves, not copies: read them, never change them."""
        return self.store.peek(rtype.storage_key, namespace if rtype.namespaced else None)

    def matcher(
        self, rtype: ResourceType, label_selector: str | None, field_selector: str | None
    ) -> Callable[[Obj], bool]:
        """A predicate for the selectors; 400 for malformed or unsupported ones."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, field_getters(list(rtype.selectable_fields)))
        return lambda obj: labels_match(labels, obj) and fields_match(fields, obj)

    @staticmethod
    def as_version(rtype: ResourceType, obj: Obj) -> Obj:
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        return obj

    # Create

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Obj,
        *,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> tuple[Obj, list[str]]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        self._check_kind(rtype, obj)
        ns = self._namespace_for(rtype, namespace, meta)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            meta["name"] = self._generate_name(rtype, ns, meta["generateName"])
        self._validate_metadata(rtype, meta)
        if ns:
            self._check_namespace_open(rtype, ns, meta["name"])
        if self.store.peek_one(rtype.storage_key, ns, meta["name"]) is not None:
            raise already_exists(rtype.plural, meta["name"], rtype.group)
        for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamp()
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rtype.has_status and rtype.custom:
            obj.pop("status", None)
        self._before_create(rtype, obj)
        if rtype.kind == "Pod" and not rtype.group:
            warnings = _check_pod_fields(obj, field_validation)
        else:
            warnings = self._check_custom(rtype, obj, None, field_validation)
        self.as_version(rtype, obj)
        if dry_run:
            return obj, warnings
        meta["resourceVersion"] = self.store.next_revision()
        self.store.write(rtype.storage_key, obj, None)
        self._after_write(rtype, obj)
        return copy.deepcopy(obj), warnings

    def _check_kind(self, rtype: ResourceType, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rtype.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rtype.api_version})"
                if api_version != rtype.api_version
                else f"kind {kind} does not match the expected kind {rtype.kind}"
            )

    def _namespace_for(self, rtype: ResourceType, namespace: str | None, meta: Obj) -> str:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return ""
        if namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace
        return namespace

    def _generate_name(self, rtype: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if self.store.peek_one(rtype.storage_key, namespace, name) is None:
                return name
        raise ApiError(500, "InternalError", "could not generate a unique name")

    def _validate_metadata(self, rtype: ResourceType, meta: Obj) -> None:
        name = meta["name"]
        causes: list[tuple[str, str]] = []
        pattern, limit, what = (
            (DNS1123_LABEL, 63, "RFC 1123 label")
            if rtype.kind == "Namespace"
            else (DNS1123_SUBDOMAIN, 253, "RFC 1123 subdomain")
        )
        if rtype.kind not in ("Event",) and (not pattern.match(name) or len(name) > limit):
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase {what} must '
                    "consist of lower case alphanumeric characters, '-' or '.', and must "
                    "start and end with an alphanumeric character",
                )
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                causes.append(
                    (
                        "metadata.labels",
                        f'Invalid value: "{value}": a valid label must '
                        "be an empty string or consist of alphanumeric characters, '-', "
                        "'_' or '.', and must start and end with an alphanumeric character",
                    )
                )
            if not key or len(key.rsplit("/", 1)[-1]) > 63:
                causes.append(
                    (
                        "metadata.labels",
                        f'Invalid value: "{key}": name part must be no more than 63 characters',
                    )
                )
        if causes:
            raise invalid(rtype.kind, rtype.group, name, causes)

    def _check_namespace_open(self, rtype: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.peek_one("/namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rtype.qualified} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                details={
                    "name": name,
                    "group": rtype.group,
                    "kind": rtype.plural,
                    "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}],
                },
            )

    def _before_create(self, rtype: ResourceType, obj: Obj) -> None:
        if rtype.kind == "Namespace" and not rtype.group:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        elif rtype.kind == "Pod" and not rtype.group:
            _default_pod(obj)
            self._validate_pod(rtype, obj)
        elif rtype.kind in WORKLOAD_KINDS and rtype.group == "apps":
            self._check_workload(rtype, obj, None)
        elif rtype.kind == "CustomResourceDefinition":
            self._validate_crd(rtype, obj)
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)
            obj["status"] = _crd_status(obj)
        elif rtype.kind == "Service" and not rtype.group:
            obj.setdefault("spec", {}).setdefault("type", "ClusterIP")
            obj["spec"].setdefault("clusterIP", "None")

    def _validate_pod(self, rtype: ResourceType, pod: Obj) -> None:
        causes = _pod_spec_causes(pod.get("spec") or {}, "spec")
        if causes:
            raise invalid(rtype.kind, rtype.group, pod["metadata"]["name"], causes)

    def _check_workload(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        """Default and validate a Deployment or ReplicaSet as the API server does: its pod
        template like a pod's spec, a selector that must select the template's labels and,
        once created, may not change."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        if rtype.kind == "Deployment":
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.get("template") or {}
        _default_pod_spec(template.setdefault("spec", {}))
        causes = _pod_spec_causes(template["spec"], "spec.template.spec")
        if template["spec"]["restartPolicy"] != "Always":
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{template["spec"]["restartPolicy"]}": supported '
                    'values: "Always"',
                )
            )
        selector = spec.get("selector") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(("spec.selector", "Required value"))
        elif not selector_matches(selector, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template "
                    "`labels`",
                )
            )
        if old is not None and selector != (old.get("spec") or {}).get("selector"):
            causes.append(("spec.selector", f"Invalid value: {selector!r}: field is immutable"))
        if causes:
            raise invalid(rtype.kind, rtype.group, obj["metadata"]["name"], causes)

    def _validate_crd(self, rtype: ResourceType, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        causes: list[tuple[str, str]] = []
        for field in ("group", "names", "versions"):
            if not spec.get(field):
                causes.append((f"spec.{field}", "Required value"))
        for field in ("plural", "kind"):
            if not names.get(field):
                causes.append((f"spec.names.{field}", "Required value"))
        name = crd["metadata"]["name"]
        if (
            names.get("plural")
            and spec.get("group")
            and name != f"{names['plural']}.{spec['group']}"
        ):
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        storage = [v for v in spec.get("versions") or [] if v.get("storage")]
        if spec.get("versions") and len(storage) != 1:
            causes.append(
                (
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            )
        if causes:
            raise invalid(rtype.kind, rtype.group, name, causes)

    def _check_custom(
        self, rtype: ResourceType, obj: Obj, old: Obj | None, field_validation: str
    ) -> list[str]:
        """Default, prune and validate a custom resource; returns warnings."""
        if rtype.validator is None:
            return []
        schema = rtype.validator.schema
        apply_defaults(schema, obj)
        dropped = prune(schema, obj, root=True)
        warnings = [f'unknown field "{path}"' for path in dropped]
        if dropped and field_validation == "Strict":
            raise ApiError(
                400,
                "BadRequest",
                "strict decoding error: " + ", ".join(warnings),
            )
        errors = rtype.validator.validate(obj, old)
        if errors:
            raise invalid(rtype.kind, rtype.group, obj["metadata"]["name"], errors)
        return [] if field_validation == "Ignore" else warnings

    # Update

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> tuple[Obj, list[str]]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        old = self.get(rtype, namespace or "", name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if not meta.get("resourceVersion") and rtype.custom:
            raise invalid(
                rtype.kind,
                rtype.group,
                name,
                [
                    (
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if not meta.get("resourceVersion"):
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._update(rtype, old, new, subresource, dry_run, field_validation)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> tuple[Obj, list[str]]:
        current = self.find(rtype, namespace or "", name)
        if current is None:
            if patch_type == APPLY_PATCH and subresource is None:
                return self.create(
                    rtype, namespace, patch, dry_run=dry_run, field_validation=field_validation
                )
            raise not_found(rtype.plural, name, rtype.group)
        if patch_type == MERGE_PATCH:
            new = merge_patch(current, patch)
        elif patch_type == JSON_PATCH:
            new = json_patch(current, patch)
        elif patch_type in (STRATEGIC_PATCH, APPLY_PATCH):
            if patch_type == STRATEGIC_PATCH and rtype.custom:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                )
            # Server-side apply is approximated: the applied configuration is merged in
            # (no field ownership, no removal of fields dropped from the configuration).
            new = (
                merge_patch(current, patch)
                if rtype.custom
                else strategic_merge_patch(current, patch)
            )
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type: {patch_type}")
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        return self._update(rtype, current, new, subresource, dry_run, field_validation)

    def update_status(self, rtype: ResourceType, obj: Obj) -> Obj:
        """For the harness's own controllers: write `status` of the current object."""
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        current = self.view(rtype, namespace, name)
        if current is None:
            raise not_found(rtype.plural, name, rtype.group)
        # A status update reads only the metadata and status of what it is given, and
        # writes a copy of the current object with that status: no copy is needed here.
        return self._update(
            rtype, current, {**current, "status": obj.get("status")}, "status", False, ""
        )[0]

    def _update(
        self,
        rtype: ResourceType,
        old: Obj,
        new: Obj,
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        *,
        internal: bool = False,
    ) -> tuple[Obj, list[str]]:
        self._check_kind(rtype, new)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        name = old_meta["name"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(rtype.plural, name, rtype.group)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise conflict(rtype.plural, name, rtype.group)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif subresource is not None:
            raise ApiError(405, "MethodNotAllowed", f"{subresource} cannot be updated")
        else:
            for immutable in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if immutable in old_meta:
                    meta[immutable] = old_meta[immutable]
                else:
                    meta.pop(immutable, None)
            if rtype.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            self._validate_metadata(rtype, meta)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise invalid(
                        rtype.kind,
                        rtype.group,
                        name,
                        [
                            (
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if "
                                "the object is being deleted, found new finalizers "
                                f"{sorted(added)!r}",
                            )
                        ],
                    )
            if rtype.kind == "Pod" and not rtype.group and not internal:
                self._check_pod_update(rtype, old, new)
        if rtype.kind in WORKLOAD_KINDS and rtype.group == "apps" and subresource is None:
            self._check_workload(rtype, new, old)
        if rtype.kind == "CustomResourceDefinition" and subresource is None:
            self._validate_crd(rtype, new)
            new["status"] = _crd_status(new)
        meta = new["metadata"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        warnings = self._check_custom(rtype, new, old, field_validation)
        if rtype.tracks_generation and _spec_changed(rtype, old, new):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        self.as_version(rtype, new)
        if new == old or dry_run:
            return new, warnings
        return self._commit(rtype, old, new), warnings

    def _check_pod_update(self, rtype: ResourceType, old: Obj, new: Obj) -> None:
        def frozen(pod: Obj) -> Obj:
            spec = copy.deepcopy(pod.get("spec") or {})
            for key in _MUTABLE_POD_SPEC:
                spec.pop(key, None)
            for kind in ("containers", "initContainers"):
                for container in spec.get(kind) or []:
                    container.pop("image", None)
            return spec

        if frozen(old) != frozen(new):
            raise invalid(
                rtype.kind,
                rtype.group,
                old["metadata"]["name"],
                [
                    (
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                        "existing tolerations), `spec.terminationGracePeriodSeconds` (allow it "
                        "to be set to 1 if it was previously negative)",
                    )
                ],
            )

    def _commit(self, rtype: ResourceType, old: Obj | None, new: Obj) -> Obj:
        """Write an update; an object being deleted with no finalizers left goes away."""
        meta = new["metadata"]
        meta["resourceVersion"] = self.store.next_revision()
        # A pod in its grace period stays until the kubelet has stopped its containers.
        if (
            meta.get("deletionTimestamp")
            and not _blocking_finalizers(rtype, new)
            and not int(meta.get("deletionGracePeriodSeconds") or 0)
        ):
            return self._remove(rtype, new)
        self.store.write(rtype.storage_key, new, old)
        self._after_write(rtype, new)
        return copy.deepcopy(new)

    def _remove(self, rtype: ResourceType, obj: Obj) -> Obj:
        final = self.store.remove(rtype.storage_key, obj)
        if rtype.kind == "CustomResourceDefinition":
            self.registry.unregister_crd(obj["metadata"]["name"])
        return self.as_version(rtype, final)

    def _after_write(self, rtype: ResourceType, obj: Obj) -> None:
        if rtype.kind == "CustomResourceDefinition" and not obj["metadata"].get(
            "deletionTimestamp"
        ):
            self.registry.register_crd(obj)

    def write_internal(self, rtype: ResourceType, new: Obj) -> Obj:
        """For the kubelet and scheduler: replace an object as a system component would
        (no immutability checks on pod specs), against the object's current version."""
        meta = new["metadata"]
        old = self.get(rtype, meta.get("namespace", ""), meta["name"])
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._update(rtype, old, new, None, False, "", internal=True)[0]

    # Delete

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: Obj | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        options = options or {}
        obj = self.get(rtype, namespace or "", name)
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise conflict(rtype.plural, name, rtype.group)
        if preconditions.get("resourceVersion") and (
            preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise conflict(rtype.plural, name, rtype.group)
        new = copy.deepcopy(obj)
        finalizers = list(new["metadata"].get("finalizers") or [])
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        grace = self._grace_period(rtype, obj, options)
        if dry_run:
            return obj
        if grace > 0 or _blocking_finalizers(rtype, new):
            new_meta = new["metadata"]
            if new_meta.get("deletionTimestamp"):
                previous = int(new_meta.get("deletionGracePeriodSeconds") or 0)
                if grace >= previous and finalizers == (meta.get("finalizers") or []):
                    return obj
            new_meta["deletionTimestamp"] = timestamp()
            new_meta["deletionGracePeriodSeconds"] = grace
            if rtype.tracks_generation:
                new_meta["generation"] = int(new_meta.get("generation") or 1) + 1
            return self._commit(rtype, obj, new)
        final = self._remove(rtype, new)
        if rtype.kind == "Pod" and not rtype.group:
            return final
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": rtype.group,
                "kind": rtype.plural,
                "uid": meta["uid"],
            },
        }

    def _grace_period(self, rtype: ResourceType, obj: Obj, options: Obj) -> int:
        """Only bound, still-running pods are deleted gracefully (the kubelet finishes it)."""
        if rtype.kind != "Pod" or rtype.group:
            return 0
        if not obj.get("spec", {}).get("nodeName") or _is_terminal(obj):
            return 0
        requested = options.get("gracePeriodSeconds")
        if requested is None:
            requested = obj["spec"].get("terminationGracePeriodSeconds", 30)
        return max(int(requested), 0)

    def finish_pod_deletion(self, rtype: ResourceType, pod: Obj) -> None:
        """The kubelet's final delete with grace 0 once the containers are gone."""
        current = self.find(rtype, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
            return
        if _blocking_finalizers(rtype, current):
            current["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(
                rtype,
                self.get(rtype, pod["metadata"]["namespace"], pod["metadata"]["name"]),
                current,
            )
        else:
            self._remove(rtype, current)

    def record_event(
        self,
        involved: Obj,
        kind: str,
        reason: str,
        message: str,
        component: str,
        *,
        host: str | None = None,
    ) -> None:
        """A core/v1 Event about an object, as a controller or kubelet posts it; dropped
        when it cannot be created (e.g. the namespace is terminating)."""
        events = self.registry.lookup("", "v1", "events")
        assert events is not None
        meta = involved["metadata"]
        source = {"component": component, **({"host": host} if host else {})}
        when = timestamp()
        body: Obj = {
            "metadata": {"generateName": f"{meta['name']}."},
            "involvedObject": {
                "kind": involved.get("kind", ""),
                "apiVersion": involved.get("apiVersion", ""),
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": source,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        with contextlib.suppress(ApiError):
            self.create(events, meta["namespace"], body)

    def remove_finalizer(self, rtype: ResourceType, obj: Obj, finalizer: str) -> None:
        current = self.find(rtype, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None:
            return
        new = copy.deepcopy(current)
        new["metadata"]["finalizers"] = [
            f for f in current["metadata"].get("finalizers") or [] if f != finalizer
        ]
        if rtype.kind == "Namespace" and finalizer == "kubernetes":
            new.setdefault("spec", {})["finalizers"] = []
        if not new["metadata"]["finalizers"]:
            new["metadata"].pop("finalizers")
        if new != current:
            self._commit(rtype, current, new)


def _blocking_finalizers(rtype: ResourceType, obj: Obj) -> list[str]:
    finalizers = list(obj["metadata"].get("finalizers") or [])
    if rtype.kind == "Namespace" and not rtype.group:
        finalizers += (obj.get("spec") or {}).get("finalizers") or []
    return finalizers


def _spec_changed(rtype: ResourceType, old: Obj, new: Obj) -> bool:
    ignored = {"metadata", "status", "apiVersion", "kind"}
    if not rtype.has_status:
        ignored.discard("status")
    return {k: v for k, v in old.items() if k not in ignored} != {
        k: v for k, v in new.items() if k not in ignored
    }


def _crd_status(crd: Obj) -> Obj:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    previous = (crd.get("status") or {}).get("storedVersions") or []
    when = timestamp()
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": when,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": when,
        },
    ]
    old_conditions = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
    for condition in conditions:
        before = old_conditions.get(condition["type"])
        if before and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = before["lastTransitionTime"]
    return {
        "conditions": conditions,
        "acceptedNames": names,
        "storedVersions": sorted(set(previous) | set(stored)),
    }


def _pod_spec_causes(spec: Obj, where_spec: str) -> list[tuple[str, str]]:
    """What the API server finds wrong with a pod spec (a pod's or a pod template's)."""
    causes: list[tuple[str, str]] = []
    if not spec.get("containers"):
        causes.append((f"{where_spec}.containers", "Required value"))
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            where = f"{where_spec}.{kind}[{index}]"
            if not container.get("name"):
                causes.append((f"{where}.name", "Required value"))
            if not container.get("image"):
                causes.append((f"{where}.image", "Required value"))
            resources = container.get("resources") or {}
            for resource, quantity in (resources.get("requests") or {}).items():
                if (
                    "/" in resource
                    and not resource.startswith("kubernetes.io/")
                    and ((resources.get("limits") or {}).get(resource) != quantity)
                ):
                    causes.append(
                        (
                            f"{where}.resources.requests[{resource}]",
                            f'Invalid value: "{quantity}": must be equal to '
                            f"{resource} limit of "
                            f"{(resources.get('limits') or {}).get(resource, '0')}",
                        )
                    )
    return causes


def _default_pod_spec(spec: Obj) -> None:
    """The defaults of every pod spec, a pod template's too (SetDefaults_PodSpec and
    SetDefaults_Container); those of pods alone are `_default_pod`'s."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = str(container.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")


def _default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    _default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    guaranteed = True
    burstable = False
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            resources = container.setdefault("resources", {})
            limits = resources.get("limits") or {}
            requests = (
                resources.setdefault("requests", {}) if limits else resources.get("requests") or {}
            )
            for resource, quantity in limits.items():
                requests.setdefault(resource, quantity)
            if requests or limits:
                burstable = True
            if not (limits.get("cpu") and limits.get("memory")) or any(
                requests.get(r) != limits.get(r) for r in ("cpu", "memory")
            ):
                guaranteed = False
    pod["status"] = {
        "phase": "Pending",
        "qosClass": "Guaranteed" if guaranteed else "Burstable" if burstable else "BestEffort",
    }


def _go_map(labels: Obj) -> str:
    """A label map as the API server's messages print it (Go's `%#v`)."""
    pairs = ", ".join(f'"{key}":"{value}"' for key, value in sorted(labels.items()))
    return f"map[string]string{{{pairs}}}"


def _check_pod_fields(pod: Obj, field_validation: str) -> list[str]:
    """Unknown fields of a Pod's spec and containers (the API server's field validation):
    a 400 under `fieldValidation=Strict`, else warnings. The known fields are the official
    client's models (V1PodSpec, V1Container), the schemas the API server decodes into."""
    from kubernetes.client import V1Container, V1PodSpec

    spec = pod.get("spec") or {}
    unknown = [f"spec.{key}" for key in spec if key not in V1PodSpec.attribute_map.values()]
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            unknown += [
                f"spec.{kind}[{index}].{key}"
                for key in container
                if key not in V1Container.attribute_map.values()
            ]
    warnings = [f'unknown field "{path}"' for path in unknown]
    if warnings and field_validation == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(warnings))
    return [] if field_validation == "Ignore" else warnings
