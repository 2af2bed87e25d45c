"""kopf handlers: an index of the sweeps, and the loop that reconciles them.

Every kopf setting is made in `configure`, each with its reason. kopf watches the sweeps and
keeps their latest bodies in an index; `runtime.reconciler.Reconciler` reconciles each every
few seconds. No kopf handler needs a finalizer, so nothing ever waits for the operator to
delete a sweep. The engine is stateless: a reconcile after a restart picks up exactly where
the last status write left off.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import kopf
from kubernetes import client, config

from lrsweep import api
from lrsweep.runtime.cluster import Cluster
from lrsweep.runtime.pods import LABEL_SWEEP
from lrsweep.runtime.reconciler import Key, Reconciler
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry

SETTINGS = OperatorSettings()


class Backoffs:
    """kopf's retries of its own API calls (the watch): 1, 2, 5, then every 10 s, for as
    long as the API server fails. A finite list would end the operator after it (about
    20 s of errors); an outage is waited out instead, and /healthz says so meanwhile."""

    def __iter__(self) -> Iterator[float]:
        yield from (1.0, 2.0, 5.0)
        while True:
            yield 10.0


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's record of each object's last handled state ("diff base"), kept for no object.
    Only change handlers (create, update, resume, delete) and timers' and daemons' idle
    delays read it, and the operator has none of those (indexes, an event handler, startup,
    cleanup, a probe); yet kopf's default builds it, a deep copy of the body, at every watch
    event of every pod and sweep (a sweep's whole status included, then dropped), and
    copies it again: a sixth of the operator's CPU at 100 sweeps."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def load_cluster_config() -> None:
    """Where the cluster is: the pod's service account, else the kubeconfig (KUBECONFIG)."""
    # The kubernetes package leaves these two untyped.
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as err:
            raise api.SpecError(
                f"no Kubernetes cluster to run on: not in a pod, and no usable kubeconfig "
                f"({err}); set KUBECONFIG, or sweep without a cluster: lrsweep run SWEEP.yaml"
            ) from None


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
async def lrsweeps(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[Key, dict[str, Any]]:
    """Each sweep's latest body, by (namespace, name); kopf drops it when the sweep goes."""
    return {(namespace or "default", name or ""): copy.deepcopy(dict(body))}


@kopf.index("", "v1", "pods", labels={LABEL_SWEEP: kopf.PRESENT})
async def trial_pods(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> dict[Key, dict[str, Any]]:
    """Each sweep's trial pods, by (namespace, sweep name), as the watch last saw them: the
    reconcile loop reads them here instead of listing them every tick (`Cluster.trial_pods`).
    Only their metadata and status, all a reconcile reads of a pod: 800 live pods' specs
    would double the operator's memory. A pod that has ended (and is not being deleted)
    wakes its sweep's reconcile."""
    metadata = {k: v for k, v in body.metadata.items() if k != "managedFields"}
    pod = copy.deepcopy({"metadata": metadata, "status": dict(body.status)})
    key = (namespace or "default", labels[LABEL_SWEEP])
    ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    reconciler: Reconciler | None = getattr(memo, "reconciler", None)
    if ended and reconciler is not None and not pod.get("metadata", {}).get("deletionTimestamp"):
        reconciler.wake(key)
    return {key: pod}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # One replica, no peering: the Deployment is `Recreate`, so two never overlap.
    settings.peering.standalone = True
    # Re-establish watches regularly: a silently dropped stream would otherwise stall us.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    # Only trial pods, filtered by the API server: kopf would otherwise watch, and index
    # once before its first handler call, every pod of the namespaces (or the cluster).
    settings.watching.label_selectors["", "v1", "pods"] = LABEL_SWEEP
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = Backoffs()
    # No change handlers, so nothing reads a diff base: build none (`NoDiffBase`).
    settings.persistence.diffbase_storage = NoDiffBase()
    # kopf's own log lines at INFO and above.
    settings.posting.level = logging.INFO
    # The cluster's config was loaded by `run` (before kopf starts, to fail with one line).
    telemetry = Telemetry()
    telemetry.serve(SETTINGS.metrics_port)
    index: kopf.Index[Key, Any] = kwargs["lrsweeps"]  # kopf passes indexes by name
    pods: kopf.Index[Key, Any] = kwargs["trial_pods"]

    def sweeps() -> dict[Key, Any]:
        return {key: body for key, store in index.items() for body in store}

    def pods_of(namespace: str, sweep: str) -> list[Any]:
        return list(pods.get((namespace, sweep), ()))

    memo.cluster = cluster = Cluster(client.CoreV1Api(), telemetry, pod_index=pods_of)

    memo.reconciler = Reconciler(cluster, SETTINGS, sweeps)
    memo.loop = asyncio.create_task(memo.reconciler.run(), name="reconciler")


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    memo.loop.cancel()
    await memo.reconciler.stop()
    await memo.cluster.close()


@kopf.on.probe(id="reconciler")
async def health(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """/healthz: 500 when the loop has stopped; else the sweeps and the API server's state."""
    if memo.loop.done():
        raise kopf.PermanentError(f"the reconcile loop ended: {memo.loop!r}")
    report: dict[str, Any] = memo.reconciler.health()
    return report


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def forget_deleted(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # kopf calls a handler only once every index has its first listing: the indexes are
    # whole from here on, and the reconciles may start (`Reconciler.watches_listed`).
    memo.reconciler.watches_listed = True
    if event["type"] == "DELETED":
        meta = event["object"]["metadata"]
        memo.cluster.telemetry.forget_sweep(
            meta.get("namespace", "default"), meta["name"], [p.value for p in api.Phase]
        )


def run() -> None:
    """`lrsweep operator`: run the operator until SIGTERM."""
    load_cluster_config()  # no cluster: one clear error, not kopf retrying every minute
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    liveness = f"http://0.0.0.0:{SETTINGS.health_port}/healthz" if SETTINGS.health_port else None
    kopf.run(
        standalone=True,
        clusterwide=SETTINGS.clusterwide,
        namespaces=SETTINGS.watched_namespaces(),
        liveness_endpoint=liveness,
    )
