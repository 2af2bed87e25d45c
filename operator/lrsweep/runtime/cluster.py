"""What a reconcile asks of the cluster: the Kubernetes API calls, each in a worker thread
off the event loop, counted when they fail and tracked for /healthz (`ApiHealth`); a sweep's
trial pods from the operator's watch or a LIST; and HTTP to the trainers' endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lrsweep import api
from lrsweep.runtime.pods import LABEL_SWEEP, pod_key
from lrsweep.telemetry import Telemetry

# The longest Event message posted (the events API's limit for a note, 1 KB); the rest is cut.
EVENT_MESSAGE_LIMIT = 1024

log = logging.getLogger(__name__)

# A sweep's pods are read from the operator's watch (`Cluster.pod_index`), and listed from
# the API server only this often, or when the watch lacks a pod the stored status expects:
# the watch could miss a deletion (a stream cut while the pod went), a LIST cannot.
RELIST_SECONDS = 60.0
T = TypeVar("T")


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{err.status} {err.reason}"


def _drained(response: Any) -> bytes:
    """The body of a response the client was told not to read (`_preload_content=False`),
    its connection given back to the pool. The client then builds no model of it: a V1Pod
    of every pod created or deleted and a V1Event of every event, which the operator never
    reads, and a V1PodList of every LIST, which it turned back into dicts. At 100 sweeps
    they were 7% of the operator's CPU."""
    try:
        data: bytes = response.data
    finally:
        response.release_conn()
    return data


def _body_problems(err: ValidationError) -> str:
    """The client's validation errors of a request body, as Kubernetes names fields:
    `spec.containers[0].comand: unknown field`."""

    def path(loc: tuple[int | str, ...]) -> str:
        parts = loc[1:]  # loc[0] is the body's position among the call's arguments
        text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
        return text.lstrip(".") or "the pod"

    return "; ".join(
        f"{path(e['loc'])}: "
        + ("unknown field" if e["type"] == "extra_forbidden" else str(e["msg"]))
        for e in err.errors()
    )


# --- the Kubernetes API, off the event loop --------------------------------------------------


# A failed operation not tried again for this long no longer counts against the API server's
# health (twice the longest backoff between a sweep's reconciles: one still failing is tried
# again within it).
FAILURE_MEMORY_SECONDS = 120.0


@dataclass
class _Failing:
    since: float
    last: float
    what: str


@dataclass
class ApiHealth:
    """Whether the API server answers, by operation: each one whose last call failed (no
    answer, 5xx, 429), since when, and why. An outage of one kind of request (the sweeps'
    while pods answer) shows until that kind answers again."""

    clock: Callable[[], float] = time.monotonic
    failing: dict[str, _Failing] = field(default_factory=dict)

    def answered(self, operation: str) -> None:
        self.failing.pop(operation, None)

    def failed(self, operation: str, what: str) -> None:
        now = self.clock()
        before = self.failing.get(operation)
        self.failing[operation] = _Failing(before.since if before else now, now, what)

    def report(self) -> str:
        now = self.clock()
        recent = [f for f in self.failing.values() if now - f.last <= FAILURE_MEMORY_SECONDS]
        if not recent:
            return "ok"
        since = min(f.since for f in recent)
        last = max(recent, key=lambda f: f.last)
        return f"failing for {now - since:.0f} s (last: {last.what}); retrying with backoff"


@dataclass
class Cluster:
    """The API calls a reconcile makes; each runs in a worker thread. Also what the operator
    process remembers between reconciles (sweeps tidied, discards unanswered, listings)."""

    core: client.CoreV1Api
    telemetry: Telemetry
    http: aiohttp.ClientSession | None = None
    # Finished sweeps (by uid) whose leftover pods this process has deleted: a finished sweep's
    # pods are listed once per operator process (after a restart too), not at every tick.
    tidied: set[str] = field(default_factory=set)
    # Pods ("namespace/name") whose trainer did not answer a POST /discard: how many times.
    # Such a pod is left running for the next reconcile to ask again (`kube.DISCARD_TRIES`
    # in all; `kube.delete_unwanted_pods`).
    undiscarded: dict[str, int] = field(default_factory=dict)
    # Reconciles under way: `close` lets them end before it closes the HTTP session.
    reconciling: int = 0
    # How the API server has answered lately, for /healthz.
    health: ApiHealth = field(default_factory=ApiHealth)
    # The trial pods of a sweep (namespace, name) as the operator's watch last saw them
    # (reconciles start once it has listed them all); None: list them every time.
    pod_index: Callable[[str, str], Sequence[Mapping[str, Any]]] | None = None
    # When each sweep's pods were last listed from the API server (time.monotonic).
    listed: dict[tuple[str, str], float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    async def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            result = await asyncio.to_thread(fn)
        except ApiException as err:
            self.telemetry.api_errors.labels(operation, str(err.status)).inc()
            if err.status is None or err.status >= 500 or err.status == 429:
                self.health.failed(operation, f"{operation}: {err.status} {err.reason}")
            else:  # the server answered; the request was wrong
                self.health.answered(operation)
            raise
        except urllib3.exceptions.HTTPError as err:  # no answer at all: refused, reset, timeout
            self.telemetry.api_errors.labels(operation, "none").inc()
            self.health.failed(operation, f"{operation}: {type(err).__name__}")
            raise
        self.health.answered(operation)
        return result

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str | None:
        """Merge `patch` into the sweep's status; return the sweep's resourceVersion after it
        (None: deleted meanwhile, nothing written)."""
        custom = client.CustomObjectsApi(self.core.api_client)
        body: Any = {"status": patch}
        try:
            written = await self._call(
                "patch_status",
                lambda: custom.patch_namespaced_custom_object_status(
                    api.GROUP, api.VERSION, namespace, api.PLURAL, name, body
                ),
            )
        except ApiException as err:
            if err.status != 404:
                raise
            return None
        version = (
            written.get("metadata", {}).get("resourceVersion")
            if isinstance(written, dict)
            else None
        )
        return str(version) if version is not None else None

    async def drop_finalizer(self, sweep: Mapping[str, Any], finalizer: str) -> None:
        """Remove `finalizer` from the sweep, as of the version read: a sweep changed since is
        a 409, and the next reconcile tries again."""
        meta = sweep["metadata"]
        custom = client.CustomObjectsApi(self.core.api_client)
        body: Any = {
            "metadata": {
                "finalizers": [f for f in meta.get("finalizers") or [] if f != finalizer],
                "resourceVersion": meta.get("resourceVersion"),
            }
        }
        try:
            await self._call(
                "patch_sweep",
                lambda: custom.patch_namespaced_custom_object(
                    api.GROUP,
                    api.VERSION,
                    meta.get("namespace", "default"),
                    api.PLURAL,
                    meta["name"],
                    body,
                ),
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    async def post_event(
        self, sweep: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        """An Event about the sweep, as `kubectl describe lrs` shows them."""
        meta = sweep["metadata"]
        namespace = meta.get("namespace", "default")
        body: Any = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": sweep.get("apiVersion", f"{api.GROUP}/{api.VERSION}"),
                "kind": sweep.get("kind", api.KIND),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": "lrsweep"},
            "reportingComponent": "lrsweep",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call(
            "create_event",
            lambda: _drained(
                self.core.create_namespaced_event(namespace, body, _preload_content=False)
            ),
        )

    async def trial_pods(
        self, namespace: str, sweep: str, expected: Collection[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """The sweep's trial pods: from the watch when it holds each (trial, attempt) pod of
        `expected` (those the stored status says exist) and the last LIST is recent, else
        listed. A pod created since the watch's last event is one it lacks, so a reconcile
        never takes a pod the watch has not seen yet for lost."""
        key = (namespace, sweep)
        if (
            self.pod_index is not None
            and self.clock() - self.listed.get(key, -math.inf) < RELIST_SECONDS
        ):
            watched = [dict(p) for p in self.pod_index(namespace, sweep)]
            if set(expected) <= {pod_key(p) for p in watched}:
                return watched
        listed_at = self.clock()
        listed = await self.list_pods(namespace, sweep)
        self.listed[key] = listed_at
        return listed

    async def list_pods(self, namespace: str, sweep: str) -> list[dict[str, Any]]:
        """The sweep's trial pods as the API server sends them: plain dicts with its
        camelCase names, like the watch's (the JSON read as it is, no model built)."""

        def listed() -> list[dict[str, Any]]:
            response = self.core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_SWEEP}={sweep}", _preload_content=False
            )
            items: list[dict[str, Any]] = json.loads(_drained(response)).get("items") or []
            return items

        return await self._call("list_pods", listed)

    async def read_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The LRSweep as stored now (None: deleted)."""
        custom = client.CustomObjectsApi(self.core.api_client)
        try:
            found = await self._call(
                "read_sweep",
                lambda: custom.get_namespaced_custom_object(
                    api.GROUP, api.VERSION, namespace, api.PLURAL, name
                ),
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(found, dict):  # the client returns the JSON it was sent as a dict
            raise TypeError(f"the API server answered a GET of LRSweep {name} with {found!r}")
        return found

    async def create_pod(self, namespace: str, pod: dict[str, Any]) -> str | None:
        """Create a trial pod; return why the API refused it for good (None: created)."""
        # The client sends plain dicts as they are; its type stubs only name model classes.
        body: Any = pod
        try:
            # Strict: a misspelt field in the user's template (`comand:`) is refused, naming
            # it, instead of dropped, which would run the image's default command unnoticed.
            await self._call(
                "create_pod",
                lambda: _drained(
                    self.core.create_namespaced_pod(
                        namespace, body, field_validation="Strict", _preload_content=False
                    )
                ),
            )
        except ApiException as err:
            if err.status == 409:  # AlreadyExists: created before a restart; that is success
                return None
            if err.status in (400, 403, 422):  # the pod itself is unacceptable: no retry helps
                return _api_message(err)
            raise
        except ValidationError as err:  # the client's own validation of the body
            return _body_problems(err)
        except ValueError as err:
            return str(err).splitlines()[0]
        return None

    async def delete_pod(self, namespace: str, name: str, grace: int) -> None:
        try:
            await self._call(
                "delete_pod",
                lambda: _drained(
                    self.core.delete_namespaced_pod(
                        name, namespace, grace_period_seconds=grace, _preload_content=False
                    )
                ),
            )
        except ApiException as err:
            if err.status != 404:
                raise

    async def apply_configmap(self, namespace: str, cm: dict[str, Any]) -> str | None:
        """Create the result ConfigMap, or update the one this sweep owns; return why a
        ConfigMap of that name was left alone (None: written).

        One the sweep does not own (the user's, another sweep's) is never replaced: that would
        make this sweep its owner, and deleting the sweep would then delete it."""
        name = cm["metadata"]["name"]
        body: Any = cm  # a plain dict, as in create_pod
        try:
            await self._call(
                "create_configmap", lambda: self.core.create_namespaced_config_map(namespace, body)
            )
            return None
        except ApiException as err:
            if err.status != 409:
                raise
        read = await self._call(
            "read_configmap", lambda: self.core.read_namespaced_config_map(name, namespace)
        )
        existing: dict[str, Any] = self.core.api_client.sanitize_for_serialization(read)
        ours = {owner["uid"] for owner in cm["metadata"]["ownerReferences"]}
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(owner.get("uid") in ours for owner in owners):
            return f'ConfigMap "{name}" exists and is not owned by this sweep; left unchanged'
        # The version read: a ConfigMap changed since is a 409, and the next reconcile retries.
        meta = {**cm["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]}
        body = {**cm, "metadata": meta}
        await self._call(
            "replace_configmap",
            lambda: self.core.replace_namespaced_config_map(name, namespace, body),
        )
        return None

    async def scrape(self, url: str, timeout: float) -> str | None:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status != 200:
                    return None
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def promote(self, namespace: str, url: str, timeout: float) -> None:
        """POST the go-ahead past a rung; a failure is retried by the next reconcile."""
        await self._post(namespace, url, timeout)

    async def discard(self, namespace: str, url: str, timeout: float) -> bool:
        """POST that a trial keeps no checkpoint; True once the trainer has deleted it."""
        return await self._post(namespace, url, timeout)

    async def _post(self, namespace: str, url: str, timeout: float) -> bool:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        try:
            async with self.http.post(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                if resp.status < 300:
                    return True
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            problem = str(err) or type(err).__name__
        log.debug("POST %s failed: %s", url, problem)
        self.telemetry.post_failures.labels(namespace).inc()
        return False

    async def close(self, timeout: float = 10.0) -> None:
        """Close the HTTP session, once the reconciles under way have ended (for at most
        `timeout` seconds): kopf leaves a timer that is still running when the operator stops
        to finish on its own, after the cleanup handlers that call this."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.reconciling and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self.http is not None:
            await self.http.close()
