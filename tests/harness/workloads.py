"""The apps/v1 controllers: Deployments and ReplicaSets, as kube-controller-manager runs them.

A Deployment owns one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`, the
hash also a label of its selector and pods, `deployment.kubernetes.io/revision` counting the
templates), and each ReplicaSet keeps `spec.replicas` pods of its template (`<rs>-<random>`),
all linked by controller ownerReferences, so that deleting a Deployment lets the garbage
collector take its ReplicaSets and their pods. Objects without a controller that a selector
matches are adopted, as the real controllers do.

Strategies: `Recreate` scales every old ReplicaSet to zero and starts the new one only once
no pod of theirs is left (terminating ones included); `RollingUpdate` surges and scales down
within `maxSurge`/`maxUnavailable`. Status follows `kubectl rollout status` and kstatus
(helm's `--wait`): `observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`,
`availableReplicas`, `unavailableReplicas`, and the `Available` and `Progressing` conditions.
Not emulated: `minReadySeconds` (ready is available), `progressDeadlineSeconds` (no
`ProgressDeadlineExceeded`), proportional scaling of a rollout in progress, `scale`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections import defaultdict
from typing import Any

from tests.harness.api import Api
from tests.harness.meta import ApiError, Obj, timestamp
from tests.harness.resources import ResourceType
from tests.harness.selectors import selector_matches

logger = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


def template_hash(template: Obj) -> str:
    """A pod template's `pod-template-hash`: FNV-1a (32 bits) of the template, its decimal
    digits spelt in the API machinery's safe alphabet, as the Deployment controller does."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(digit) % len(_SAFE_ALPHABET)] for digit in str(value))


def _without_hash(template: Obj) -> Obj:
    """A pod template as the controller compares them: without the hash label, and without
    empty values (which a typed client's round trip adds or drops: `creationTimestamp: null`,
    `resources: {}`), as Go's structs do not tell them apart."""
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    compact: Obj = _compact(template)
    return compact


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        items = ((key, _compact(item)) for key, item in value.items())
        return {key: item for key, item in items if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def _replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def _status(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _revision(rs: Obj) -> int:
    value = (rs["metadata"].get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def _controller_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _controller_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _is_active(pod: Obj) -> bool:
    """Counted by its ReplicaSet: neither finished nor being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")


def _is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _scaled_value(value: object, total: int, *, round_up: bool) -> int:
    """An int-or-percent field (`maxSurge`, `maxUnavailable`) of `total` replicas."""
    if isinstance(value, str) and value.endswith("%"):
        share = total * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(str(value))


def rolling_limits(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in replicas; Recreate allows neither."""
    spec = deployment["spec"]
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    desired = _replicas(deployment)
    surge = _scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def _merge_condition(existing: list[Obj], kind: str, status: str, reason: str, message: str) -> Obj:
    """A Deployment condition, keeping its times while nothing about it changes."""
    old = next((c for c in existing if c.get("type") == kind), None)
    now = timestamp()
    condition = {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    if old is not None and old.get("status") == status:
        condition["lastTransitionTime"] = old.get("lastTransitionTime", now)
        if (old.get("reason"), old.get("message")) == (reason, message):
            condition["lastUpdateTime"] = old.get("lastUpdateTime", now)
    return condition


class Workloads:
    """One level-triggered pass over every Deployment and ReplicaSet (`reconcile`)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._failures: dict[str, str] = {}  # ReplicaSet uid -> last FailedCreate message

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.api.registry.lookup(group, version, plural)
        assert rtype is not None, f"{plural}.{group} is a built-in type"
        return rtype

    @property
    def deployments(self) -> ResourceType:
        return self._type("apps", "v1", "deployments")

    @property
    def replica_sets(self) -> ResourceType:
        return self._type("apps", "v1", "replicasets")

    @property
    def pods(self) -> ResourceType:
        return self._type("", "v1", "pods")

    def reconcile(self) -> None:
        if not (self.api.scan(self.deployments, None) or self.api.scan(self.replica_sets, None)):
            return  # no workload: no pod to look at
        pods = self.api.list_objects(self.pods, None)
        by_controller: dict[str | None, list[Obj]] = defaultdict(list)
        for pod in pods:
            by_controller[_controller_uid(pod)].append(pod)
        for deployment in self.api.list_objects(self.deployments, None):
            if not deployment["metadata"].get("deletionTimestamp"):
                self._deployment(deployment, by_controller)
        for rs in self.api.list_objects(self.replica_sets, None):
            if not rs["metadata"].get("deletionTimestamp"):
                self._replica_set(rs, by_controller)

    def _owned(
        self, owner: Obj, rtype: ResourceType, own: list[Obj], orphans: list[Obj]
    ) -> list[Obj]:
        """The objects `owner` controls: `own`, and those of the `orphans` (no controller)
        that it adopts: in its namespace, selected by its selector, not being deleted (nor
        finished, for pods). Adopted ones leave `orphans`."""
        meta = owner["metadata"]
        selector = owner["spec"].get("selector") or {}
        result = list(own)
        for obj in list(orphans):
            if (
                obj["metadata"].get("namespace") == meta["namespace"]
                and not obj["metadata"].get("deletionTimestamp")
                and (rtype.kind != "Pod" or _is_active(obj))
                and selector_matches(selector, obj["metadata"].get("labels") or {})
            ):
                orphans.remove(obj)
                adopted = copy.deepcopy(obj)
                refs = adopted["metadata"].get("ownerReferences") or []
                adopted["metadata"]["ownerReferences"] = [*refs, _controller_ref(owner)]
                result.append(self.api.write_internal(rtype, adopted))
        return result

    # Deployments

    def _deployment(self, deployment: Obj, pods: dict[str | None, list[Obj]]) -> None:
        spec = deployment["spec"]
        replica_sets: dict[str | None, list[Obj]] = defaultdict(list)
        for rs in self.api.list_objects(self.replica_sets, deployment["metadata"]["namespace"]):
            replica_sets[_controller_uid(rs)].append(rs)
        owned = sorted(
            self._owned(
                deployment,
                self.replica_sets,
                replica_sets[deployment["metadata"]["uid"]],
                replica_sets[None],
            ),
            key=lambda rs: (_revision(rs), rs["metadata"]["creationTimestamp"]),
        )
        template = _without_hash(spec.get("template") or {})
        new = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == template), None)
        old = [rs for rs in owned if rs is not new]
        latest = max((_revision(rs) for rs in old), default=0)
        if new is not None and _revision(new) <= latest:
            # A template used before is the newest again (`kubectl rollout undo`).
            new = self._annotate(self.replica_sets, new, {REVISION: str(latest + 1)})
        if not spec.get("paused"):
            if (spec.get("strategy") or {}).get("type") == "Recreate":
                new = self._recreate(deployment, new, old, pods)
            else:
                new = self._roll(deployment, new, old)
            self._prune_history(deployment, old)
        self._deployment_status(deployment, new, old)

    def _recreate(
        self, deployment: Obj, new: Obj | None, old: list[Obj], pods: dict[str | None, list[Obj]]
    ) -> Obj | None:
        for index, rs in enumerate(old):
            old[index] = self._scale(deployment, rs, 0)
        for rs in old:
            if any(
                (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                for pod in pods[rs["metadata"]["uid"]]
            ):
                return new  # the old pods go first, terminating ones included
        if new is None:
            return self._create_replica_set(deployment, _replicas(deployment), old)
        return self._scale(deployment, new, _replicas(deployment))

    def _roll(self, deployment: Obj, new: Obj | None, old: list[Obj]) -> Obj | None:
        desired = _replicas(deployment)
        surge, unavailable = rolling_limits(deployment)
        total = sum(_replicas(rs) for rs in old) + (_replicas(new) if new else 0)
        current = _replicas(new) if new else 0
        if current >= desired:
            target = desired
        else:
            target = current + max(0, min(desired + surge - total, desired - current))
        if new is None:
            new = self._create_replica_set(deployment, target, old)
            if new is None:
                return None
        else:
            new = self._scale(deployment, new, target)
        # Scale the old ReplicaSets down, their unavailable pods first, while at least
        # `desired - maxUnavailable` pods stay available.
        minimum = desired - unavailable
        replicas = {rs["metadata"]["uid"]: _replicas(rs) for rs in old}
        everything = sum(replicas.values()) + target
        budget = everything - minimum - (target - _status(new, "availableReplicas"))
        for rs in old:
            uid = rs["metadata"]["uid"]
            drop = max(0, min(budget, replicas[uid] - _status(rs, "availableReplicas")))
            replicas[uid] -= drop
            budget -= drop
        available = _status(new, "availableReplicas") + sum(
            _status(rs, "availableReplicas") for rs in old
        )
        budget = available - minimum
        for rs in old:
            uid = rs["metadata"]["uid"]
            drop = max(0, min(budget, replicas[uid]))
            replicas[uid] -= drop
            budget -= drop
        for index, rs in enumerate(old):
            old[index] = self._scale(deployment, rs, replicas[rs["metadata"]["uid"]])
        return new

    def _create_replica_set(self, deployment: Obj, replicas: int, old: list[Obj]) -> Obj | None:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = template_hash(_without_hash(template))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge, _ = rolling_limits(deployment)
        revision = max((_revision(rs) for rs in old), default=0) + 1
        body: Obj = {
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    DESIRED_REPLICAS: str(_replicas(deployment)),
                    MAX_REPLICAS: str(_replicas(deployment) + surge),
                },
                "ownerReferences": [_controller_ref(deployment)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        if spec.get("minReadySeconds"):
            body["spec"]["minReadySeconds"] = spec["minReadySeconds"]
        try:
            created, _ = self.api.create(self.replica_sets, meta["namespace"], body)
        except ApiError as exc:
            logger.warning("deployment %s/%s: %s", meta["namespace"], meta["name"], exc.message)
            return None
        self._emit(
            deployment,
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
            "deployment-controller",
        )
        return created

    def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> Obj:
        """Set a ReplicaSet's replicas (and the annotations the controller keeps on it)."""
        surge, _ = rolling_limits(deployment)
        annotations = {
            DESIRED_REPLICAS: str(_replicas(deployment)),
            MAX_REPLICAS: str(_replicas(deployment) + surge),
        }
        current = rs["metadata"].get("annotations") or {}
        before = _replicas(rs)
        if before == replicas and all(current.get(k) == v for k, v in annotations.items()):
            return rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = replicas
        updated["metadata"]["annotations"] = {**current, **annotations}
        written = self.api.write_internal(self.replica_sets, updated)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self._emit(
                deployment,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to "
                f"{replicas}",
                "deployment-controller",
            )
        return written

    def _prune_history(self, deployment: Obj, old: list[Obj]) -> None:
        """Delete the oldest idle old ReplicaSets beyond `revisionHistoryLimit`."""
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in old if _replicas(rs) == 0 and _status(rs, "replicas") == 0]
        for rs in idle[: max(0, len(idle) - limit)]:
            self._delete(self.replica_sets, rs)

    def _deployment_status(self, deployment: Obj, new: Obj | None, old: list[Obj]) -> None:
        meta = deployment["metadata"]
        desired = _replicas(deployment)
        every = ([new] if new is not None else []) + old
        counts = {
            "replicas": sum(_status(rs, "replicas") for rs in every),
            "updatedReplicas": _status(new, "replicas") if new is not None else 0,
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in every),
            "availableReplicas": sum(_status(rs, "availableReplicas") for rs in every),
        }
        counts["unavailableReplicas"] = max(0, desired - counts["availableReplicas"])
        _, unavailable = rolling_limits(deployment)
        previous = (deployment.get("status") or {}).get("conditions") or []
        conditions = [
            _merge_condition(
                previous,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
            if counts["availableReplicas"] >= desired - unavailable
            else _merge_condition(
                previous,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        ]
        complete = counts["updatedReplicas"] == desired == counts["replicas"] and (
            counts["availableReplicas"] == desired
        )
        if deployment["spec"].get("paused"):
            progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif new is None:
            progressing = ("True", "ReplicaSetUpdated", "Deployment is progressing.")
        elif complete:
            name = new["metadata"]["name"]
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
        else:
            name = new["metadata"]["name"]
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        conditions.append(_merge_condition(previous, "Progressing", *progressing))
        # The API server leaves zero counts out (omitempty).
        status: Obj = {"observedGeneration": meta.get("generation", 1)}
        status.update({field: value for field, value in counts.items() if value})
        status["conditions"] = conditions
        if new is not None:
            revision = {REVISION: str(_revision(new))}
            deployment = self._annotate(self.deployments, deployment, revision)
        if deployment.get("status") != status:
            deployment["status"] = status
            self.api.update_status(self.deployments, deployment)

    def _annotate(self, rtype: ResourceType, obj: Obj, annotations: dict[str, str]) -> Obj:
        """Set annotations of an object (written only if they change)."""
        current = obj["metadata"].get("annotations") or {}
        if all(current.get(key) == value for key, value in annotations.items()):
            return obj
        updated = copy.deepcopy(obj)
        updated["metadata"]["annotations"] = {**current, **annotations}
        return self.api.write_internal(rtype, updated)

    # ReplicaSets

    def _replica_set(self, rs: Obj, pods: dict[str | None, list[Obj]]) -> None:
        meta = rs["metadata"]
        owned = self._owned(rs, self.pods, pods[meta["uid"]], pods[None])
        active = [pod for pod in owned if _is_active(pod)]
        missing = _replicas(rs) - len(active)
        if missing > 0:
            for _ in range(missing):
                if not self._create_pod(rs):
                    break
        elif missing < 0:
            for pod in self._deletion_order(active)[:-missing]:
                self._delete(self.pods, pod)
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        ready = [pod for pod in active if _is_ready(pod)]
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for pod in active
                if template_labels.items() <= (pod["metadata"].get("labels") or {}).items()
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "observedGeneration": meta.get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if rs.get("status") != status:
            rs["status"] = status
            self.api.update_status(self.replica_sets, rs)

    def _create_pod(self, rs: Obj) -> bool:
        meta = rs["metadata"]
        template = copy.deepcopy(rs["spec"].get("template") or {})
        template_meta = template.get("metadata") or {}
        pod_meta: Obj = {
            "generateName": f"{meta['name']}-",
            "labels": template_meta.get("labels") or {},
            "ownerReferences": [_controller_ref(rs)],
        }
        for field in ("annotations", "finalizers"):
            if template_meta.get(field):
                pod_meta[field] = template_meta[field]
        try:
            created, _ = self.api.create(
                self.pods, meta["namespace"], {"metadata": pod_meta, "spec": template["spec"]}
            )
        except ApiError as exc:
            # Reported once per distinct failure: the next pass tries again.
            if self._failures.get(meta["uid"]) != exc.message:
                self._failures[meta["uid"]] = exc.message
                self._emit(
                    rs,
                    "FailedCreate",
                    f"Error creating: {exc.message}",
                    "replicaset-controller",
                    "Warning",
                )
            return False
        self._failures.pop(meta["uid"], None)
        self._emit(
            rs,
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            "replicaset-controller",
        )
        return True

    @staticmethod
    def _deletion_order(pods: list[Obj]) -> list[Obj]:
        """Which pods a scale-down deletes first, as the ReplicaSet controller ranks them:
        unscheduled, then pending, then not ready, then most restarted, then newest."""
        phases = {"Pending": 0, "Unknown": 1, "Running": 2}

        def restarts(pod: Obj) -> int:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            return sum(int(s.get("restartCount") or 0) for s in statuses)

        newest_first = sorted(
            pods, key=lambda pod: pod["metadata"]["creationTimestamp"], reverse=True
        )
        return sorted(
            newest_first,
            key=lambda pod: (
                bool(pod["spec"].get("nodeName")),
                phases.get((pod.get("status") or {}).get("phase", "Pending"), 0),
                _is_ready(pod),
                -restarts(pod),
            ),
        )

    # Shared

    def _delete(self, rtype: ResourceType, obj: Obj) -> None:
        try:
            self.api.delete(rtype, obj["metadata"]["namespace"], obj["metadata"]["name"], {})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _emit(
        self, obj: Obj, reason: str, message: str, component: str, kind: str = "Normal"
    ) -> None:
        self.api.record_event(obj, kind, reason, message, component)
