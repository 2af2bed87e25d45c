"""Fixtures of the harness's own suite: API clients and a small test CRD (`Widget`).

The cluster fixtures (`kube_cluster`, `kube_namespace`, `harness`) come from
`tests.harness.pytest_plugin`, registered in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.pytest_plugin import KubeCluster

# The official client's models make every field Optional and its methods take models where
# these tests pass plain dicts (which it accepts); the tests use the APIs dynamically.
CoreApi = Any
CustomApi = Any
ApiClient = Any

GROUP = "harness.lrsweep.dev"
VERSION = "v1alpha1"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wdg"],
            "categories": ["harness"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min < self.max",
                                        "message": "min must be below max",
                                    },
                                    {
                                        "rule": "self.size >= oldSelf.size",
                                        "message": "size may not shrink",
                                    },
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                    "label": {"type": "string", "pattern": "^[a-z]+$"},
                                    "min": {"type": "number", "default": 0.001},
                                    "max": {"type": "number", "default": 1},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="session")
def widget_crd(kube_cluster: KubeCluster) -> Iterator[str]:
    """The Widget CRD, applied with kubectl and established (session-wide)."""
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    yield CRD_NAME
    kube_cluster.kubectl("delete", "crd", CRD_NAME, "--wait=false", "--ignore-not-found")


@pytest.fixture
def api_client(kube_cluster: KubeCluster) -> Iterator[ApiClient]:
    api = kube_cluster.client()
    yield api
    api.close()


@pytest.fixture
def core(api_client: ApiClient) -> CoreApi:
    return client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: ApiClient, widget_crd: str) -> CustomApi:
    return client.CustomObjectsApi(api_client)


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


def sleeper_pod(name: str, script: str = "sleep 300", **spec: Any) -> dict[str, Any]:
    """A pod running `sh -c script` (busybox on a real cluster, the host's sh on the harness)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
            ],
            **spec,
        },
    }


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not: nobody may reap orphans on this machine)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def kill_if_alive(pid: int) -> None:
    """Clean up after a failed check: a live orphan would outlast the test run."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
