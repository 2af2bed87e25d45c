"""The kopf settings and handlers of `lrsweep.controller`.

Covers: the operator configures kopf to build no diff base (no copy of each watched body at
every watch event), which keeps nothing from kopf: no handler of the operator reacts to
changes (create, update, resume, delete) or spawns (timers, daemons), the only ones that
read it; a diff base of no object is built or found.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from lrsweep import api, controller
from lrsweep.runtime.cluster import Cluster
from lrsweep.settings import OperatorSettings

SWEEPS = kopf.Resource(api.GROUP, api.VERSION, api.PLURAL)
PODS = kopf.Resource("", "v1", "pods")


def configured(monkeypatch: pytest.MonkeyPatch) -> tuple[kopf.OperatorSettings, Cluster]:
    """kopf's settings and the Cluster as `configure` leaves them (no metrics served)."""
    monkeypatch.setattr(controller, "SETTINGS", OperatorSettings(metrics_port=0))
    settings = kopf.OperatorSettings()
    memo = kopf.Memo()
    indexes: Any = {}  # what configure reads of kopf's indexes: .items() and .get()
    handler: Any = controller.configure  # kopf's decorator types it as its own callback

    async def configure() -> Cluster:
        await handler(settings=settings, memo=memo, lrsweeps=indexes, trial_pods=indexes)
        memo.loop.cancel()
        cluster: Cluster = memo.cluster
        await cluster.close()
        return cluster

    return settings, asyncio.run(configure())


def test_the_operator_configures_kopf_to_build_no_diff_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, _ = configured(monkeypatch)
    assert isinstance(settings.persistence.diffbase_storage, controller.NoDiffBase)


def test_no_handler_of_the_operator_reads_a_diff_base() -> None:
    registry = kopf.get_default_registry()
    assert registry._indexing.has_handlers(resource=PODS)  # the handlers are registered
    for resource in (SWEEPS, PODS):
        assert not registry._changing.has_handlers(resource=resource)
        assert not registry._spawning.has_handlers(resource=resource)


def test_a_diff_base_of_no_object_is_built_or_found() -> None:
    body = kopf.Body(
        {
            "metadata": {"name": "s", "labels": {"app": "x"}},
            "spec": {"search": {"min": 1e-4}},
            "status": {"trials": {"t000": {"phase": "Running"}}},
        }
    )
    storage = controller.NoDiffBase()
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
