"""In-memory storage: objects per resource, one global resourceVersion counter, and a bounded
per-resource event log from which watches resume (410 Gone once the log no longer reaches back).

Everything runs on one event loop; no method awaits, so each call is atomic.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict, deque
from dataclasses import dataclass, field

from tests.harness.meta import Obj


@dataclass(frozen=True)
class WatchEvent:
    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    object: Obj
    old: Obj | None


class GoneError(Exception):
    """The requested resourceVersion is older than the retained event history."""


@dataclass(eq=False)
class Watcher:
    """One subscriber to one resource's events; `None` in the queue means "stream dropped"."""

    storage_key: str
    droppable: bool = True  # the harness's own controllers are not subject to dropped streams
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, history: int = 10_000) -> None:
        self.revision = 0
        self._history = history
        self._objects: dict[str, dict[tuple[str, str], Obj]] = defaultdict(dict)
        # Each resource's keys in (namespace, name) order, kept until a key comes or goes
        # (an update leaves the order as it is): reads list in this order.
        self._order: dict[str, list[tuple[str, str]]] = {}
        # The keys of objects with ownerReferences or a deletionTimestamp: the only ones a
        # garbage collection pass has anything to do with (thousands of Events have neither).
        self._collectable: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._log: dict[str, deque[WatchEvent]] = defaultdict(deque)
        self._compacted: dict[str, int] = defaultdict(int)
        self._watchers: dict[str, set[Watcher]] = defaultdict(set)
        self.uids: dict[str, tuple[str, str, str]] = {}
        self.changed = asyncio.Event()

    def next_revision(self) -> str:
        self.revision += 1
        return str(self.revision)

    def get(self, storage_key: str, namespace: str, name: str) -> Obj | None:
        obj = self.peek_one(storage_key, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, storage_key: str, namespace: str | None = None) -> list[Obj]:
        return [copy.deepcopy(obj) for obj in self.peek(storage_key, namespace)]

    # Reads without a copy, for the control plane's own passes over many objects (a copy of
    # every pod at each pass made thousands of pods cost the harness whole seconds): the
    # stored objects themselves, which the caller must not change (copy what it writes).

    def peek_one(self, storage_key: str, namespace: str, name: str) -> Obj | None:
        return self._objects[storage_key].get((namespace, name))

    def peek(self, storage_key: str, namespace: str | None = None) -> list[Obj]:
        items = self._objects[storage_key]
        order = self._order.get(storage_key)
        if order is None:
            order = self._order[storage_key] = sorted(items)
        return [items[key] for key in order if namespace is None or key[0] == namespace]

    def peek_collectable(self, storage_key: str) -> list[Obj]:
        """The stored objects with ownerReferences or a deletionTimestamp (read only, as
        `peek`'s), in `peek`'s order."""
        items = self._objects[storage_key]
        return [items[key] for key in sorted(self._collectable.get(storage_key, ()))]

    def storage_keys(self) -> list[str]:
        return [key for key, items in self._objects.items() if items]

    def find_uid(self, uid: str) -> tuple[str, str, str] | None:
        return self.uids.get(uid)

    def write(self, storage_key: str, obj: Obj, old: Obj | None) -> None:
        """Store an object whose resourceVersion the caller has just assigned."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        items = self._objects[storage_key]
        if key not in items:
            self._order.pop(storage_key, None)
        # One copy is both the stored object and the watch event's: neither is ever changed
        # in place (reads copy, or only read; a write stores a new copy).
        stored = items[key] = copy.deepcopy(obj)
        if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
            self._collectable[storage_key].add(key)
        else:
            self._collectable[storage_key].discard(key)
        self.uids[meta["uid"]] = (storage_key, *key)
        self._record(
            storage_key,
            WatchEvent(int(meta["resourceVersion"]), "MODIFIED" if old else "ADDED", stored, old),
        )

    def remove(self, storage_key: str, obj: Obj) -> Obj:
        """Delete for good; the DELETED event carries the last state at a new resourceVersion."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if self._objects[storage_key].pop(key, None) is not None:
            self._order.pop(storage_key, None)
        self._collectable[storage_key].discard(key)
        self.uids.pop(meta["uid"], None)
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = self.next_revision()
        self._record(storage_key, WatchEvent(int(self.revision), "DELETED", final, obj))
        return final

    def _record(self, storage_key: str, event: WatchEvent) -> None:
        log = self._log[storage_key]
        log.append(event)
        while len(log) > self._history:
            self._compacted[storage_key] = log.popleft().revision
        for watcher in self._watchers[storage_key]:
            watcher.queue.put_nowait(event)
        self.changed.set()

    def subscribe(
        self, storage_key: str, since: int | None, *, droppable: bool = True
    ) -> tuple[Watcher, list[WatchEvent]]:
        """Register a watcher; with `since`, also return the retained events after it."""
        backlog: list[WatchEvent] = []
        if since is not None:
            if since < self._compacted[storage_key]:
                raise GoneError(
                    f"too old resource version: {since} ({self._compacted[storage_key]})"
                )
            backlog = [event for event in self._log[storage_key] if event.revision > since]
        watcher = Watcher(storage_key, droppable)
        self._watchers[storage_key].add(watcher)
        return watcher, backlog

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers[watcher.storage_key].discard(watcher)

    def compact(self) -> None:
        """Forget all event history, as etcd compaction does: older watches get 410 Gone."""
        for storage_key in list(self._log):
            self._log[storage_key].clear()
        for storage_key in set(self._objects) | set(self._log):
            self._compacted[storage_key] = self.revision

    def drop_watchers(self) -> int:
        """End every open watch stream (clients must reconnect from their last version)."""
        count = 0
        for watchers in self._watchers.values():
            for watcher in [w for w in watchers if w.droppable]:
                watcher.queue.put_nowait(None)
                watchers.discard(watcher)
                count += 1
        return count
