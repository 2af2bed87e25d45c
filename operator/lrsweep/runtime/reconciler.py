"""The operator's loop: every sweep the watch knows, reconciled every few seconds.

kopf only keeps the index of sweeps (a watch; see `controller`). A kopf timer per sweep would
put a finalizer on every sweep, and a sweep deleted while the operator is down would then
hang until it came back; without one, deleting a sweep, its CRD or the Helm release never
waits for the operator, and the trial pods go with their sweep by garbage collection (their
ownerReferences).

One task per sweep at most, `max_concurrent_reconciles` at once. A reconcile that fails (the
API server down or throttling, anything unforeseen) is logged in one line and tried again
after a backoff that doubles up to `MAX_BACKOFF`; nothing a sweep does stops the loop or
another sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from lrsweep import api
from lrsweep.api import Phase
from lrsweep.runtime.clock import timestamp
from lrsweep.runtime.cluster import Cluster
from lrsweep.runtime.kube import combined, reconcile, status_patch
from lrsweep.settings import OperatorSettings

log = logging.getLogger(__name__)

# The finalizer earlier operators (kopf timers) put on every sweep; removed where found.
LEGACY_FINALIZER = f"{api.GROUP}/finalizer"
MAX_BACKOFF = 60.0

Key = tuple[str, str]  # (namespace, name)


def _finished(body: Mapping[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass
class Reconciler:
    """Reconciles each sweep `sweeps()` returns (by (namespace, name): its latest body)."""

    cluster: Cluster
    settings: OperatorSettings
    sweeps: Callable[[], Mapping[Key, Mapping[str, Any]]]
    clock: Callable[[], float] = time.monotonic
    _due: dict[Key, float] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)
    _running: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    # Each sweep's resourceVersion as this loop last read or wrote it: an index body at that
    # version is the sweep as stored, and needs no read (a GET per sweep and tick, saved).
    _known: dict[Key, str] = field(default_factory=dict)
    # Sweeps woken while a reconcile of theirs ran: reconciled again as soon as it ends.
    _woken: set[Key] = field(default_factory=set)
    _limit: asyncio.Semaphore | None = None
    last_pass: float | None = None
    # Whether kopf's watches have listed every sweep and trial pod (its first handler call
    # says so). No reconcile starts before: kopf holds back every handler, and every event
    # after an object's first, until it has indexed each object it has seen once, and each
    # pod a reconcile launched meanwhile would be one more to index first. Under load the
    # launches could outrun it for good, with every sweep's and pod's events queued behind.
    watches_listed: bool = False

    async def run(self) -> None:
        """Forever: start the reconciles that are due, a few times per interval."""
        tick = min(0.25, self.settings.reconcile_interval / 4)
        while True:
            self.start_due()
            await asyncio.sleep(tick)

    def start_due(self) -> None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.settings.max_concurrent_reconciles)
        now = self.clock()
        self.last_pass = now
        if not self.watches_listed:
            return
        sweeps = self.sweeps()
        for key in [k for k in self._due if k not in sweeps]:  # deleted: forgotten
            self._due.pop(key)
            self._failures.pop(key, None)
            self._known.pop(key, None)
        for key, body in sweeps.items():
            if key in self._running or self._due.get(key, now) > now:
                continue
            if self._settled(body):
                self._due[key] = now + self.settings.reconcile_interval
                continue
            due = self._due.get(key, now)
            self._running[key] = asyncio.create_task(
                self._one(key, body, due), name=f"reconcile {key}"
            )

    def wake(self, key: Key) -> None:
        """Reconcile this sweep at the next tick rather than at its interval (a trial pod of
        it has ended: its status and the next launch need not wait), unless it is backing
        off after a failure."""
        if key in self._failures:
            return
        if key in self._running:
            self._woken.add(key)
        else:
            self._due[key] = self.clock()

    def _settled(self, body: Mapping[str, Any]) -> bool:
        """A finished sweep this process has tidied up after: nothing left to do."""
        meta = body.get("metadata") or {}
        return (
            _finished(body)
            and meta.get("uid") in self.cluster.tidied
            and LEGACY_FINALIZER not in (meta.get("finalizers") or [])
        )

    async def _one(self, key: Key, body: Mapping[str, Any], due: float) -> None:
        """Reconcile one sweep, due since `due`, once fewer than the most at once run."""
        assert self._limit is not None
        try:
            async with self._limit:
                self.cluster.telemetry.reconcile_wait_seconds.observe(self.clock() - due)
                await self.reconcile(body)
        except asyncio.CancelledError:
            raise
        except ApiException as err:
            self._failed(key, f"Kubernetes API answered {err.status} {err.reason}")
        except Exception as err:  # a bug, or a client error: it must not stop the other sweeps
            log.error("reconcile of %s/%s raised", *key, exc_info=True)
            self._failed(key, f"{type(err).__name__}: {err}")
        else:
            self._failures.pop(key, None)
            self._due[key] = self.clock() + self.settings.reconcile_interval
            if key in self._woken:
                self._due[key] = self.clock()
        finally:
            self._running.pop(key, None)
            self._woken.discard(key)

    def _failed(self, key: Key, why: str) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(MAX_BACKOFF, self.settings.reconcile_interval * 2 ** (failures - 1))
        log.warning("reconcile of %s/%s failed (%s); retrying in %.0f s", *key, why, delay)
        self._due[key] = self.clock() + delay

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        """One reconcile of one sweep: its status written, then its events posted (one per
        kind: `kube.combined`)."""
        meta = body["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]
        if LEGACY_FINALIZER in (meta.get("finalizers") or []):
            await self.cluster.drop_finalizer(body, LEGACY_FINALIZER)
        if meta.get("deletionTimestamp"):
            return  # going: its pods go with it
        key = (namespace, name)
        version = meta.get("resourceVersion")
        if not _finished(body) and (version is None or version != self._known.get(key)):
            # The index may be older than the last write (a watch event late or lost), and a
            # reconcile from an older status could undo what a newer one decided.
            latest = await self.cluster.read_sweep(namespace, name)
            if latest is None:
                return  # deleted since the index saw it
            body = latest
        if (read := body["metadata"].get("resourceVersion")) is not None:
            self._known[key] = str(read)
        now = timestamp()
        with self.cluster.telemetry.reconcile_seconds.time():
            result = await reconcile(self.cluster, self.settings, body, now, current=True)
        if result.status is not None:
            written = await self.cluster.patch_status(
                namespace, name, status_patch(result.stored, result.status)
            )
            if written is not None:
                self._known[key] = written
            if result.after_write is not None:
                await result.after_write()  # what the new status stops, at once
        for type_, reason, message in combined(result.events):
            try:
                await self.cluster.post_event(body, type_, reason, message, now)
            except ApiException as err:  # an event is worth a line, never a retry
                log.info("event %s on %s/%s not posted: %s", reason, namespace, name, err.reason)

    def health(self) -> dict[str, Any]:
        """What /healthz reports; raises when the loop itself has stopped."""
        stalled = max(30.0, 10 * self.settings.reconcile_interval)
        if self.last_pass is None or self.clock() - self.last_pass > stalled:
            raise RuntimeError(f"the reconcile loop has not run for over {stalled:.0f} s")
        return {
            "watchesListed": self.watches_listed,
            "sweeps": len(self.sweeps()),
            "reconciling": len(self._running),
            "retrying": len(self._failures),
            "kubernetesApi": self.cluster.health.report(),
        }

    async def stop(self) -> None:
        """Let reconciles under way end (they write what they decided), start no more."""
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=10)
