"""A minimal kopf operator for Widgets: create/update/delete handlers, a timer, status patches.

Run by test_kopf.py as `kopf run --standalone --namespace NS widgets.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "harness.lrsweep.dev", "v1alpha1", "widgets"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Post log messages as k8s events too, which exercises core/v1 event creation.
    settings.posting.loggers = True
    settings.posting.level = logging.INFO
    # Short server-side watch timeouts exercise reconnecting from a resourceVersion.
    settings.watching.server_timeout = 2


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Created", message=f"size {spec['size']}")
    patch.status["phase"] = "Created"
    return {"size": spec["size"]}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.size")
def resized(new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Resized"
    patch.status["size"] = new


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str | None, logger: kopf.Logger, **_: Any) -> None:
    logger.info(f"cleaned up after {name}")


@kopf.timer(GROUP, VERSION, PLURAL, interval=0.3)
def tick(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    patch.status["ticks"] = int(status.get("ticks") or 0) + 1
