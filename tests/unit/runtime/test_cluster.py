"""The threads and connections of the operator's Kubernetes API calls (`runtime.cluster`).

Covers: as many calls under way at once as `api_threads` was given each get a thread (none
waits behind another); the client keeps as many connections for reuse.
"""

from __future__ import annotations

import asyncio
import threading

from lrsweep.runtime.cluster import Cluster, api_threads
from lrsweep.telemetry import Telemetry


def test_calls_under_way_at_once_each_get_a_thread() -> None:
    core, executor = api_threads(8)
    cluster = Cluster(core, Telemetry(), executor=executor)
    # Each call returns only once all 8 are under way: with fewer threads, the barrier breaks.
    barrier = threading.Barrier(8, timeout=10)

    async def calls() -> list[int]:
        return await asyncio.gather(*(cluster._call("wait", barrier.wait) for _ in range(8)))

    assert sorted(asyncio.run(calls())) == list(range(8))
    executor.shutdown()


def test_the_client_keeps_a_connection_per_thread_for_reuse() -> None:
    core, executor = api_threads(8)
    assert core.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] == 8
    executor.shutdown()
