"""The control-plane loops a real cluster runs beside the API server: namespace termination,
cleanup of a deleted CRD's instances, ownerReference garbage collection (background,
foreground and orphan propagation), and the Deployment and ReplicaSet controllers
(`workloads.py`)."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict

from tests.harness.api import CRD_CLEANUP_FINALIZER, Api
from tests.harness.meta import ApiError, Obj
from tests.harness.resources import ResourceType
from tests.harness.workloads import Workloads

logger = logging.getLogger(__name__)

# A controller pass waits at least this many times as long as the last one took.
PACING = 4.0


class Controllers:
    def __init__(self, api: Api, *, debounce: float = 0.01) -> None:
        self.api = api
        self._debounce = debounce
        self.workloads = Workloads(api)

    async def run(self) -> None:
        store = self.api.store
        loop = asyncio.get_running_loop()
        spent = 0.0
        while True:
            await store.changed.wait()
            # Let a burst of writes land first: one pass then handles all of them. A pass
            # looks at every object, so with thousands of them (a pass of tens of ms) and
            # writes arriving all the time, passes are spaced to take a fifth of the time at
            # most, leaving the rest to the API server and the kubelet.
            await asyncio.sleep(max(self._debounce, PACING * spent))
            store.changed.clear()
            started = loop.time()
            try:
                self.reconcile()
            except ApiError as exc:
                logger.warning("controller pass failed: %s", exc.message)
            except Exception:  # a bug in one pass must not stop the control plane
                logger.exception("controller pass failed")
            spent = loop.time() - started

    def reconcile(self) -> None:
        self._terminate_namespaces()
        self._clean_up_crds()
        self._collect_garbage()
        self.workloads.reconcile()

    def _type(self, group: str, plural: str) -> ResourceType:
        rtype = self.api.registry.by_storage(f"{group}/{plural}")
        assert rtype is not None, f"{plural}.{group} is a built-in type"
        return rtype

    def _delete(self, rtype: ResourceType, obj: Obj, policy: str = "Background") -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        try:
            self.api.delete(
                rtype,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                {"propagationPolicy": policy},
            )
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _terminate_namespaces(self) -> None:
        namespaces = self._type("", "namespaces")
        for ns in self.api.list_objects(namespaces, None):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            name = ns["metadata"]["name"]
            if (ns.get("status") or {}).get("phase") != "Terminating":
                ns["status"] = {"phase": "Terminating"}
                self.api.update_status(namespaces, ns)
            remaining = False
            for storage_key in self.api.store.storage_keys():
                rtype = self.api.registry.by_storage(storage_key)
                if rtype is None or not rtype.namespaced:
                    continue
                for obj in self.api.store.list_objects(storage_key, name):
                    remaining = True
                    self._delete(rtype, obj)
            if not remaining:
                self.api.remove_finalizer(namespaces, ns, "kubernetes")

    def _clean_up_crds(self) -> None:
        crds = self._type("apiextensions.k8s.io", "customresourcedefinitions")
        for crd in self.api.list_objects(crds, None):
            meta = crd["metadata"]
            if not meta.get("deletionTimestamp") or CRD_CLEANUP_FINALIZER not in (
                meta.get("finalizers") or []
            ):
                continue
            storage_key = f"{crd['spec']['group']}/{crd['spec']['names']['plural']}"
            rtype = self.api.registry.by_storage(storage_key)
            instances = self.api.store.list_objects(storage_key)
            for obj in instances:
                if rtype is not None:
                    self._delete(rtype, obj)
            if not instances:
                self.api.remove_finalizer(crds, crd, CRD_CLEANUP_FINALIZER)

    def _collect_garbage(self) -> None:
        store = self.api.store
        # Objects with neither owners nor a deletionTimestamp have nothing to collect and
        # are no one's dependents: only the others are looked at. Read only (copied where
        # written): a copy of each at each pass made thousands of pods cost whole seconds.
        candidates: list[tuple[ResourceType, Obj]] = []
        for storage_key in store.storage_keys():
            rtype = self.api.registry.by_storage(storage_key)
            if rtype is not None:
                candidates.extend((rtype, obj) for obj in store.peek_collectable(storage_key))
        dependents: dict[str, list[tuple[ResourceType, Obj]]] = defaultdict(list)
        for rtype, each in candidates:
            for ref in each["metadata"].get("ownerReferences") or []:
                dependents[ref.get("uid", "")].append((rtype, each))

        for rtype, snapshot in candidates:
            # Earlier steps of this pass may have changed or removed the object.
            current = store.peek_one(
                rtype.storage_key,
                snapshot["metadata"].get("namespace", ""),
                snapshot["metadata"]["name"],
            )
            if current is None:
                continue
            obj = current
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp"):
                alive = [ref for ref in refs if store.find_uid(ref.get("uid", "")) is not None]
                if not alive:
                    self._delete(rtype, obj)
                elif len(alive) < len(refs):
                    updated = self.api.as_version(rtype, copy.deepcopy(obj))
                    updated["metadata"]["ownerReferences"] = alive
                    self.api.write_internal(rtype, updated)
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = meta.get("finalizers") or []
            if "foregroundDeletion" in finalizers:
                children = dependents.get(meta["uid"], [])
                for child_type, child in children:
                    self._delete(child_type, child, "Foreground")
                if not children:
                    self.api.remove_finalizer(rtype, obj, "foregroundDeletion")
            if "orphan" in finalizers:
                for child_type, child in dependents.get(meta["uid"], []):
                    orphaned = copy.deepcopy(child)
                    orphaned["metadata"]["ownerReferences"] = [
                        ref
                        for ref in child["metadata"].get("ownerReferences") or []
                        if ref.get("uid") != meta["uid"]
                    ] or None
                    if orphaned["metadata"]["ownerReferences"] is None:
                        del orphaned["metadata"]["ownerReferences"]
                    self.api.write_internal(child_type, orphaned)
                self.api.remove_finalizer(rtype, obj, "orphan")
