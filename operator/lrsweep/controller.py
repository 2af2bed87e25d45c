"""kopf handlers: thin shims over `runtime.kube.reconcile`.

Every kopf setting is made in `configure`, each with its reason. A timer reconciles each
sweep every few seconds; the engine is stateless, so a reconcile after a restart picks up
exactly where the last status write left off.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lrsweep import api
from lrsweep.runtime.clock import timestamp
from lrsweep.runtime.kube import Cluster, reconcile, status_patch
from lrsweep.settings import OperatorSettings
from lrsweep.telemetry import Telemetry

SETTINGS = OperatorSettings()


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


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Handler progress and the last-handled spec live in annotations under our own group,
    # so they never collide with another kopf operator watching the same objects.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{api.GROUP}/finalizer"
    # One replica, no peering: the Deployment is `Recreate`, so two never overlap.
    settings.peering.standalone = True
    # Re-establish watches regularly: a silently dropped stream would otherwise stall us.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    # Our own Kubernetes calls retry on the next timer tick; kopf's own calls back off.
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # Events at INFO and above reach `kubectl describe`.
    settings.posting.level = logging.INFO
    # The cluster's config was loaded by `run` (before kopf starts, to fail with one line).
    telemetry = Telemetry()
    telemetry.serve(SETTINGS.metrics_port)
    memo.cluster = Cluster(client.CoreV1Api(), telemetry)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo.cluster.close()


# A failed reconcile (an API error) is simply tried again soon: every reconcile starts
# from the sweep's status and the pods, so a retry is always safe.
@kopf.timer(
    api.GROUP,
    api.VERSION,
    api.PLURAL,
    interval=SETTINGS.reconcile_interval,
    backoff=max(1.0, SETTINGS.reconcile_interval),
)
async def reconcile_sweep(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    cluster: Cluster = memo.cluster
    try:
        with cluster.telemetry.reconcile_seconds.time():
            result = await reconcile(cluster, SETTINGS, body, timestamp())
    except ApiException as err:
        if err.status is not None and (err.status >= 500 or err.status == 429):
            # Routine for an API server under load: one line, and the next tick retries.
            raise kopf.TemporaryError(
                f"Kubernetes API answered {err.status} {err.reason}; retrying",
                delay=SETTINGS.reconcile_interval,
            ) from None
        raise
    if result.status is not None:
        patch.status.update(status_patch(result.stored, result.status))
    for type_, reason, message in result.events:
        kopf.event(body, type=type_, reason=reason, message=message)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def forget_deleted(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
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
