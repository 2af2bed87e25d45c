"""The HTTP face of the test cluster: Kubernetes REST paths, discovery, watch streams, pod
logs, Table output, fault injection, and the `/_harness/*` admin endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.harness import openapi, protobuf
from tests.harness.api import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Api
from tests.harness.containers import ContainerRuntime
from tests.harness.controllers import Controllers
from tests.harness.faults import Faults
from tests.harness.kubelet import Kubelet, NodeConfig, temporary_state_dir
from tests.harness.meta import KUBERNETES_VERSION, ApiError, Obj, bad_request, kubeconfig
from tests.harness.resources import Registry, ResourceType
from tests.harness.store import GoneError, Store, WatchEvent
from tests.harness.tables import to_table

logger = logging.getLogger(__name__)

DEFAULT_EVICTION_MESSAGE = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 64Mi. "
)
_TABLE_ACCEPT = "as=Table"
_NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")
_PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code, exc.headers)


def _warning_headers(warnings: Sequence[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)}


def request_verb(method: str, path: str, query: Mapping[str, str]) -> str:
    """A request as the API server's audit log names it: `verb resource`, e.g. `list pods`,
    `watch lrsweeps`, `patch lrsweeps/status`; `get discovery` outside any resource."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return f"{method.lower()} discovery"
    watching = rest[:1] == ["watch"] or query.get("watch") in ("true", "1")
    rest = rest[1:] if rest[:1] == ["watch"] else rest
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return f"{method.lower()} discovery"
    resource = "/".join([rest[0], *rest[2:3]])
    named = len(rest) > 1
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method == "GET":
        verb = "watch" if watching else ("get" if named else "list")
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = verbs.get(method, method.lower())
    return f"{verb} {resource}"


class Harness:
    """One test cluster: API server + controllers + a kubelet for one Node.

    Use it on a running event loop (`await harness.start()` / `await harness.stop()`),
    or from synchronous code through `tests.harness.ThreadedHarness`.
    """

    def __init__(
        self,
        *,
        node: NodeConfig | None = None,
        images: Mapping[str, Sequence[str]] | None = None,
        faults: Faults | None = None,
        state_dir: Path | None = None,
        workdir: Path | None = None,
        watch_history: int = 10_000,
        restart_backoff: float = 0.2,
        isolation: bool | None = None,
        containers: ContainerRuntime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.node = node or NodeConfig()
        self.images = dict(images or {})
        self.faults = faults or Faults()
        self._owns_state_dir = state_dir is None
        self.state_dir = state_dir or temporary_state_dir()
        self.workdir = workdir or Path.cwd()
        self.restart_backoff = restart_backoff
        self.isolation = isolation
        self.containers = containers
        self.host = host
        self.port = port
        self.store = Store(history=watch_history)
        self.registry = Registry()
        self.api = Api(self.store, self.registry)
        self.controllers = Controllers(self.api)
        self._kubelet: Kubelet | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._streams: set[asyncio.Event] = set()
        # Requests answered, by "verb resource" (`request_verb`): what a client costs.
        self.requests: Counter[str] = Counter()

    @property
    def kubelet(self) -> Kubelet:
        if self._kubelet is None:
            raise RuntimeError("the harness is not started")
        return self._kubelet

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # Lifecycle

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(
                self._type("", "v1", "namespaces"), None, {"metadata": {"name": namespace}}
            )
        self._kubelet = Kubelet(
            self.api,
            node=self.node,
            images=self.images,
            state_dir=self.state_dir,
            workdir=self.workdir,
            server_port=self.port,
            restart_backoff=self.restart_backoff,
            isolation=self.isolation,
            containers=self.containers,
        )
        await self._kubelet.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.controllers.run()))
        app = web.Application(middlewares=[self._fault_middleware], client_max_size=64 * 2**20)
        app.router.add_route("GET", "/_harness/faults", self._get_faults)
        app.router.add_route("PUT", "/_harness/faults", self._put_faults)
        app.router.add_route("PATCH", "/_harness/faults", self._patch_faults)
        app.router.add_route("POST", "/_harness/watches/drop", self._drop_watches)
        app.router.add_route("POST", "/_harness/compact", self._compact)
        app.router.add_route("POST", "/_harness/pods/{namespace}/{name}/evict", self._evict)
        app.router.add_route("GET", "/_harness/healthz", self._healthz)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def stop(self) -> None:
        self._closing.set()
        for stream in list(self._streams):
            stream.set()
        self.store.drop_watchers()
        if self._kubelet is not None:
            await self._kubelet.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def kubeconfig(self) -> Obj:
        return kubeconfig(self.url)

    def write_kubeconfig(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(yaml.safe_dump(self.kubeconfig()))
        temporary.replace(path)
        return path

    # Python fault API (call on the harness's event loop; ThreadedHarness wraps them)

    def set_faults(self, **changes: Any) -> None:
        self.faults.update(**changes)

    def drop_watches(self) -> int:
        count = self.store.drop_watchers()
        for stream in list(self._streams):
            stream.set()
        return count

    def compact(self) -> None:
        self.store.compact()

    def evict_pod(self, namespace: str, name: str, message: str = DEFAULT_EVICTION_MESSAGE) -> None:
        self.kubelet.evict(namespace, name, message)

    def set_node_capacity(self, **resources: str) -> None:
        """Change the Node's capacity and allocatable (the scheduler re-checks pending pods),
        e.g. `set_node_capacity(**{"nvidia.com/gpu": "2"})`."""
        self._write_capacity(lambda current: {**current, **resources})

    def reset_node_capacity(self) -> None:
        """Give the Node back the capacity it started with, removing resources added since."""
        self._write_capacity(lambda _: self.node.capacity())

    def _write_capacity(self, new: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Set the Node's capacity and allocatable to `new` of each."""
        nodes = self._type("", "v1", "nodes")
        node = self.api.get(nodes, "", self.node.name)
        for section in ("capacity", "allocatable"):
            node["status"][section] = new(node["status"][section])
        self.api.update_status(nodes, node)

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.lookup(group, version, plural)
        assert rtype is not None
        return rtype

    # Admin endpoints

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_dict())

    async def _put_faults(self, request: web.Request) -> web.Response:
        changes = await request.json()
        self.faults.reset()
        return await self._apply_faults(changes)

    async def _patch_faults(self, request: web.Request) -> web.Response:
        return await self._apply_faults(await request.json())

    async def _apply_faults(self, changes: Any) -> web.Response:
        if not isinstance(changes, dict):
            return _json({"error": "expected a JSON object"}, 400)
        try:
            self.faults.update(**changes)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(self.faults.as_dict())

    async def _drop_watches(self, request: web.Request) -> web.Response:
        return _json({"dropped": self.drop_watches()})

    async def _compact(self, request: web.Request) -> web.Response:
        self.compact()
        return _json({"compactedAt": self.store.revision})

    async def _evict(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        message = (body or {}).get("message", DEFAULT_EVICTION_MESSAGE)
        try:
            self.evict_pod(request.match_info["namespace"], request.match_info["name"], message)
        except ApiError as exc:
            return _error(exc)
        return _json({"evicted": request.match_info["name"]})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # Faults

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.startswith("/_harness/"):
            response: web.StreamResponse = await handler(request)
            return response
        self.requests[request_verb(request.method, request.path, request.query)] += 1
        line = f"{request.method} {request.path_qs}"
        faults = self.faults
        if faults.latency and faults.applies_to(line):
            await asyncio.sleep(faults.latency)
        code = faults.draw(line)
        if code == 429:
            return _error(
                ApiError(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    details={"retryAfterSeconds": faults.retry_after},
                    headers={"Retry-After": str(faults.retry_after)},
                )
            )
        if code == 500:
            return _error(
                ApiError(
                    500, "InternalError", "Internal error occurred: injected by the test harness"
                )
            )
        return await handler(request)  # type: ignore[no-any-return]

    # Kubernetes API

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ApiError as exc:
            return _error(exc)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return _json(
                {
                    **KUBERNETES_VERSION,
                    "platform": "linux/amd64",
                    "goVersion": "go1.24",
                    "compiler": "gc",
                }
            )
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/api":
            return _json(self.registry.api_versions(f"{self.host}:{self.port}"))
        if path == "/apis":
            return _json(self.registry.api_group_list())
        if path == "/openapi/v3":
            return _json(openapi.root_document(self.registry))
        if path.startswith("/openapi/v3/"):
            segments = path.removeprefix("/openapi/v3/").split("/")
            group, version = (
                ("", segments[1])
                if segments[0] == "api"
                else (segments[1], segments[2])
                if len(segments) == 3
                else ("", "")
            )
            document = openapi.group_version_document(self.registry, group, version)
            if document is None:
                raise _NOT_FOUND
            return _json(document)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            group = parts[1]
            if len(parts) == 2:
                if not self.registry.group_versions(group):
                    raise _NOT_FOUND
                return _json(self.registry.api_group(group))
            version, rest = parts[2], parts[3:]
        else:
            raise _NOT_FOUND
        if not rest:
            listing = self.registry.resource_list(group, version)
            if listing is None:
                raise _NOT_FOUND
            return _json(listing)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _NOT_FOUND
        rtype = self.registry.lookup(group, version, rest[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in rtype.subresources:
            raise _NOT_FOUND
        if rtype.namespaced and namespace is None and (name or request.method != "GET"):
            raise _NOT_FOUND
        query = request.query
        method = request.method
        if watch_path or (name is None and method == "GET" and query.get("watch") in ("true", "1")):
            return await self._watch(request, rtype, namespace, name)
        if subresource == "log":
            return await self._logs(request, rtype, namespace or "", str(name))
        if subresource == "eviction":
            return await self._eviction(request, rtype, namespace or "", str(name))
        return await self._crud(request, rtype, namespace, name, subresource)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        content_type = request.content_type
        if content_type == "application/vnd.kubernetes.protobuf":
            return protobuf.decode_object(raw)
        try:
            if content_type == APPLY_PATCH or "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw) if raw else None
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc

    async def _crud(
        self,
        request: web.Request,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> web.StreamResponse:
        method = request.method
        query = request.query
        dry_run = query.get("dryRun") == "All"
        validation = query.get("fieldValidation", "")
        wants_table = _TABLE_ACCEPT in request.headers.get("Accept", "")
        if name is None:
            if method == "GET":
                return self._list(request, rtype, namespace, wants_table)
            if method == "POST":
                obj, warnings = self.api.create(
                    rtype,
                    namespace,
                    await self._body(request),
                    dry_run=dry_run,
                    field_validation=validation,
                )
                return _json(obj, 201, _warning_headers(warnings))
            if method == "DELETE":
                return await self._delete_collection(request, rtype, namespace)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "GET":
            obj = self.api.get(rtype, namespace or "", name)
            if wants_table and subresource is None:
                return _json(
                    to_table(
                        rtype,
                        [obj],
                        obj["metadata"]["resourceVersion"],
                        query.get("includeObject", "Metadata"),
                    )
                )
            return _json(obj)
        if method == "PUT":
            obj, warnings = self.api.replace(
                rtype,
                namespace,
                name,
                await self._body(request),
                subresource=subresource,
                dry_run=dry_run,
                field_validation=validation,
            )
            return _json(obj, 200, _warning_headers(warnings))
        if method == "PATCH":
            patch_type = request.content_type
            if patch_type not in _PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted "
                    f"media types include: {', '.join(_PATCH_TYPES)}",
                )
            obj, warnings = self.api.patch(
                rtype,
                namespace,
                name,
                patch_type,
                await self._body(request),
                subresource=subresource,
                dry_run=dry_run,
                field_validation=validation,
            )
            return _json(obj, 200, _warning_headers(warnings))
        if method == "DELETE" and subresource is None:
            options = await self._body(request) if request.can_read_body else None
            options = dict(options or {})
            for key in ("gracePeriodSeconds", "propagationPolicy", "orphanDependents"):
                if key in query:
                    value: Any = query[key]
                    options[key] = (
                        int(value)
                        if key == "gracePeriodSeconds"
                        else (value == "true" if key == "orphanDependents" else value)
                    )
            dry_run = dry_run or "All" in (options.get("dryRun") or [])
            return _json(self.api.delete(rtype, namespace, name, options, dry_run=dry_run))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _list(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, wants_table: bool
    ) -> web.Response:
        query = request.query
        items = self.api.list_objects(
            rtype, namespace, query.get("labelSelector"), query.get("fieldSelector")
        )
        revision = str(self.store.revision)
        continue_token = None
        start = query.get("continue")
        if start:
            try:
                position = json.loads(base64.urlsafe_b64decode(start.encode()))
                revision, after = position["rv"], tuple(position["after"])
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise bad_request(f"continue key is not valid: {exc}") from exc
            items = [
                obj
                for obj in items
                if (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) > after
            ]
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            items = items[:limit]
            last = items[-1]["metadata"]
            continue_token = base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "rv": revision,
                        "after": [last.get("namespace", ""), last["name"]],
                    }
                ).encode()
            ).decode()
        if wants_table:
            table = to_table(rtype, items, revision, query.get("includeObject", "Metadata"))
            if continue_token:
                table["metadata"]["continue"] = continue_token
            return _json(table)
        metadata: Obj = {"resourceVersion": revision}
        if continue_token:
            metadata["continue"] = continue_token
        return _json(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": metadata,
                "items": items,
            }
        )

    async def _delete_collection(
        self, request: web.Request, rtype: ResourceType, namespace: str | None
    ) -> web.Response:
        query = request.query
        options = await self._body(request) if request.can_read_body else None
        deleted = []
        for obj in self.api.list_objects(
            rtype, namespace, query.get("labelSelector"), query.get("fieldSelector")
        ):
            with contextlib.suppress(ApiError):
                self.api.delete(rtype, namespace, obj["metadata"]["name"], options or {})
                deleted.append(obj)
        return _json(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)},
                "items": deleted,
            }
        )

    async def _eviction(
        self, request: web.Request, rtype: ResourceType, namespace: str, name: str
    ) -> web.Response:
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "evictions are created with POST")
        body = await self._body(request) or {}
        self.api.delete(rtype, namespace, name, body.get("deleteOptions") or {})
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
            201,
        )

    # Watch

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str | None
    ) -> web.StreamResponse:
        query = request.query
        field_selector = query.get("fieldSelector")
        if name is not None:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        matches = self.api.matcher(rtype, query.get("labelSelector"), field_selector)
        wants_table = _TABLE_ACCEPT in request.headers.get("Accept", "")
        since = query.get("resourceVersion") or None
        initial = query.get("sendInitialEvents") == "true" or since in (None, "0")
        bookmarks = query.get("allowWatchBookmarks") == "true"
        try:
            start = int(since) if since not in (None, "0") else None
        except ValueError as exc:
            raise bad_request(f"invalid resource version {since!r}") from exc

        def visible(obj: Obj) -> bool:
            in_namespace = namespace is None or obj["metadata"].get("namespace") == namespace
            return in_namespace and bool(matches(obj))

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            watcher, backlog = self.store.subscribe(rtype.storage_key, None if initial else start)
        except GoneError as exc:
            await response.prepare(request)
            await self._send(
                response, {"type": "ERROR", "object": ApiError(410, "Expired", str(exc)).status()}
            )
            await response.write_eof()
            return response
        snapshot = (
            self.api.list_objects(rtype, namespace, query.get("labelSelector"), field_selector)
            if initial
            else []
        )
        revision = self.store.revision
        stop = asyncio.Event()
        self._streams.add(stop)
        deadline = self._watch_deadline(request)
        try:
            await response.prepare(request)
            for obj in snapshot:
                await self._send(response, self._event("ADDED", rtype, obj, wants_table))
            if initial and bookmarks and query.get("sendInitialEvents") == "true":
                await self._send(
                    response,
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": rtype.kind,
                            "apiVersion": rtype.api_version,
                            "metadata": {
                                "resourceVersion": str(revision),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    },
                )
            pending: list[WatchEvent] = list(backlog)
            while not stop.is_set() and not self._closing.is_set():
                if pending:
                    event = pending.pop(0)
                else:
                    timeout = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                    if timeout <= 0:
                        break
                    try:
                        queued = await asyncio.wait_for(watcher.queue.get(), timeout)
                    except TimeoutError:
                        if request.transport is None or request.transport.is_closing():
                            break
                        continue
                    if queued is None:
                        break
                    event = queued
                if initial and event.revision <= revision:
                    continue
                obj = self.api.as_version(rtype, dict(event.object))
                old = self.api.as_version(rtype, dict(event.old)) if event.old else None
                now_visible = visible(obj)
                was_visible = old is not None and visible(old)
                kind = event.type
                if kind == "MODIFIED":
                    if was_visible and not now_visible:
                        kind = "DELETED"
                    elif now_visible and not was_visible:
                        kind = "ADDED"
                    elif not now_visible:
                        continue
                elif not (now_visible or was_visible):
                    continue
                await self._send(response, self._event(kind, rtype, obj, wants_table))
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.unsubscribe(watcher)
            self._streams.discard(stop)
        return response

    def _watch_deadline(self, request: web.Request) -> float | None:
        limits = []
        if request.query.get("timeoutSeconds"):
            limits.append(float(request.query["timeoutSeconds"]))
        faults = self.faults
        if faults.watch_timeout is not None and faults.applies_to(
            f"{request.method} {request.path_qs}"
        ):
            limits.append(faults.watch_timeout)
        return time.monotonic() + min(limits) if limits else None

    def _event(self, kind: str, rtype: ResourceType, obj: Obj, table: bool) -> Obj:
        if table:
            return {
                "type": kind,
                "object": to_table(rtype, [obj], obj["metadata"]["resourceVersion"]),
            }
        return {"type": kind, "object": obj}

    @staticmethod
    async def _send(response: web.StreamResponse, event: Obj) -> None:
        await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

    # Logs

    async def _logs(
        self, request: web.Request, rtype: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        pod = self.api.get(rtype, namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        every = containers + [c["name"] for c in pod["spec"].get("initContainers") or []]
        query = request.query
        container = query.get("container")
        if container is None:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        if container not in every:
            raise bad_request(f"container {container} is not valid for pod {name}")
        found = self.kubelet.log_file(namespace, name, container)
        if found is None or (not found[1].exists() and not query.get("previous")):
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        runner, path = found
        if query.get("previous") == "true":
            path = path.with_name("log.previous")
            if not path.exists():
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
        data = path.read_bytes()
        if query.get("tailLines"):
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else b""
        if query.get("limitBytes"):
            data = data[: int(query["limitBytes"])]
        if query.get("follow") != "true":
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(data)
        offset = path.stat().st_size
        run = runner.container(container)
        while not self._closing.is_set() and run is not None:
            running = run.running
            size = path.stat().st_size if path.exists() else 0
            if size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    await response.write(handle.read(size - offset))
                offset = size
            if not running or (request.transport is None or request.transport.is_closing()):
                break
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response
