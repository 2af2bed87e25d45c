"""Run a Harness on its own event loop in a background thread, for synchronous tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.harness.server import DEFAULT_EVICTION_MESSAGE, Harness

T = TypeVar("T")


class ThreadedHarness:
    """`with ThreadedHarness(images=...) as cluster: cluster.kubeconfig_path ...`

    Every method is safe to call from any thread: it runs on the harness's loop.
    """

    def __init__(self, *, kubeconfig_path: Path | None = None, **options: Any) -> None:
        self._options = options
        self._kubeconfig_path = kubeconfig_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="lrsweep-harness", daemon=True
        )
        self._harness: Harness | None = None

    @property
    def harness(self) -> Harness:
        """The Harness itself; touch its state only through `call()`."""
        if self._harness is None:
            raise RuntimeError("the harness is not started")
        return self._harness

    @property
    def url(self) -> str:
        return self.harness.url

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("the harness is not started")
        return self._kubeconfig_path

    def start(self, timeout: float = 30.0) -> ThreadedHarness:
        self._thread.start()

        async def start() -> Harness:
            harness = Harness(**self._options)
            await harness.start()
            return harness

        try:
            self._harness = self.run(start(), timeout)
        except BaseException:
            self.stop(timeout)
            raise
        if self._kubeconfig_path is None:
            self._kubeconfig_path = self._harness.state_dir / "kubeconfig"
        self._harness.write_kubeconfig(self._kubeconfig_path)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._harness is not None:
            self.run(self._harness.stop(), timeout)
            self._harness = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> ThreadedHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a plain function on the harness's loop and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:  # handed to the calling thread, which re-raises it
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(invoke)
        return future.result(30.0)

    # The fault API, thread-safe.

    def set_faults(self, **changes: Any) -> None:
        self.call(self.harness.set_faults, **changes)

    def reset_faults(self) -> None:
        self.call(self.harness.faults.reset)

    def faults_injected(self) -> int:
        return self.call(lambda: self.harness.faults.injected)

    def drop_watches(self) -> int:
        return self.call(self.harness.drop_watches)

    def compact(self) -> None:
        self.call(self.harness.compact)

    def evict_pod(self, namespace: str, name: str, message: str = DEFAULT_EVICTION_MESSAGE) -> None:
        self.call(self.harness.evict_pod, namespace, name, message)

    def set_node_capacity(self, **resources: str) -> None:
        self.call(self.harness.set_node_capacity, **resources)

    def reset_node_capacity(self) -> None:
        self.call(self.harness.reset_node_capacity)

    def request_counts(self) -> dict[str, int]:
        """Requests answered so far, by "verb resource" (`server.request_verb`)."""
        return self.call(lambda: dict(self.harness.requests))
