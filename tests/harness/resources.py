"""The resource types the test cluster serves: built-in kinds plus those registered by CRDs,
and the discovery documents that describe them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.harness.meta import Obj
from tests.harness.validation import Validator

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    selectable_fields: tuple[str, ...] = _COMMON_FIELDS
    printer_columns: tuple[Obj, ...] = ()
    custom: bool = False
    tracks_generation: bool = False
    validator: Validator | None = field(default=None, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Versions of one group/plural share storage (conversion is the identity)."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        """`plural.group`, as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _core(
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    group: str = "",
    version: str = "v1",
    generation: bool = False,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=subresources,
        selectable_fields=_COMMON_FIELDS + fields,
        tracks_generation=generation,
    )


_EVENT_FIELDS = (
    *(
        f"involvedObject.{name}"
        for name in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    ),
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        subresources=("status",),
        fields=("status.phase",),
    ),
    _core(
        "pods",
        "Pod",
        short=("po",),
        categories=("all",),
        subresources=("status", "log", "eviction"),
        fields=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    _core("configmaps", "ConfigMap", short=("cm",)),
    _core("secrets", "Secret", fields=("type",)),
    _core("serviceaccounts", "ServiceAccount", short=("sa",)),
    _core("services", "Service", short=("svc",), categories=("all",), subresources=("status",)),
    _core("endpoints", "Endpoints", short=("ep",)),
    _core("events", "Event", short=("ev",), fields=_EVENT_FIELDS),
    _core("nodes", "Node", namespaced=False, short=("no",), subresources=("status",)),
    _core("events", "Event", group="events.k8s.io", short=("ev",)),
    _core("leases", "Lease", group="coordination.k8s.io"),
    *(
        _core(
            plural,
            kind,
            group="apps",
            short=(short,),
            categories=("all",),
            subresources=("status",),
            generation=True,
        )
        for plural, kind, short in (
            ("deployments", "Deployment", "deploy"),
            ("replicasets", "ReplicaSet", "rs"),
        )
    ),
    _core("roles", "Role", group="rbac.authorization.k8s.io"),
    _core("rolebindings", "RoleBinding", group="rbac.authorization.k8s.io"),
    _core("clusterroles", "ClusterRole", group="rbac.authorization.k8s.io", namespaced=False),
    _core(
        "clusterrolebindings",
        "ClusterRoleBinding",
        group="rbac.authorization.k8s.io",
        namespaced=False,
    ),
    _core(
        "customresourcedefinitions",
        "CustomResourceDefinition",
        group="apiextensions.k8s.io",
        namespaced=False,
        short=("crd", "crds"),
        subresources=("status",),
        generation=True,
    ),
)

# Subresources whose discovery entry names another kind/group than their parent.
_SUBRESOURCE_KINDS = {
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "", "Pod", ("get",)),
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
}


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first; others last."""
    match = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


def types_from_crd(crd: Obj) -> list[ResourceType]:
    spec = crd["spec"]
    names = spec["names"]
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(name for name in ("status", "scale") if name in subresources),
                selectable_fields=_COMMON_FIELDS
                + tuple(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or ()),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
                tracks_generation=True,
                validator=Validator(schema) if schema else None,
            )
        )
    return result


class Registry:
    """Which types are served, keyed by (group, version) then plural."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        for rtype in BUILTIN_TYPES:
            self._add(rtype)

    def _add(self, rtype: ResourceType) -> None:
        self._types.setdefault((rtype.group, rtype.version), {})[rtype.plural] = rtype

    def register_crd(self, crd: Obj) -> list[ResourceType]:
        self.unregister_crd(crd["metadata"]["name"])
        types = types_from_crd(crd)
        self._crd_types[crd["metadata"]["name"]] = types
        for rtype in types:
            self._add(rtype)
        return types

    def unregister_crd(self, name: str) -> None:
        for rtype in self._crd_types.pop(name, []):
            group = self._types.get((rtype.group, rtype.version), {})
            group.pop(rtype.plural, None)
            if not group:
                self._types.pop((rtype.group, rtype.version), None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version), {}).get(plural)

    def group_versions(self, group: str) -> list[str]:
        versions = [v for (g, v) in self._types if g == group]
        return sorted(versions, key=_version_priority)

    def by_storage(self, storage_key: str) -> ResourceType | None:
        """The preferred version's type for a storage key (for GC and namespace cleanup)."""
        group, plural = storage_key.split("/", 1)
        for version in self.group_versions(group):
            rtype = self.lookup(group, version, plural)
            if rtype is not None:
                return rtype
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self._types.get((group, version), {}).values():
            if rtype.kind == kind:
                return rtype
        return None

    def all_types(self) -> list[ResourceType]:
        return [rtype for group in self._types.values() for rtype in group.values()]

    # Discovery documents (the legacy, non-aggregated form; kubectl falls back to it).

    def api_versions(self, server_address: str) -> Obj:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def api_group_list(self) -> Obj:
        groups = sorted({g for (g, _) in self._types if g})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self.api_group(group) for group in groups],
        }

    def api_group(self, group: str) -> Obj:
        versions = [
            {"groupVersion": f"{group}/{version}", "version": version}
            for version in self.group_versions(group)
        ]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": versions,
            "preferredVersion": versions[0],
        }

    def resource_list(self, group: str, version: str) -> Obj | None:
        types = self._types.get((group, version))
        if types is None:
            return None
        resources: list[Obj] = []
        for rtype in sorted(types.values(), key=lambda t: t.plural):
            entry: Obj = {
                "name": rtype.plural,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": list(rtype.verbs),
            }
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            resources.append(entry)
            for sub in rtype.subresources:
                sub_group, sub_version, sub_kind, verbs = _SUBRESOURCE_KINDS[sub]
                sub_entry: Obj = {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": sub_kind or rtype.kind,
                    "verbs": list(verbs),
                }
                if sub_group:
                    sub_entry["group"] = sub_group
                    sub_entry["version"] = sub_version
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }
