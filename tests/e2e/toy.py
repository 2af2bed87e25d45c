"""LRSweep documents that sweep the torch-free toy trainer (toy_trainer.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TOY = Path(__file__).with_name("toy_trainer.py")


def toy_sweep_doc(
    name: str,
    search: dict[str, Any],
    env: dict[str, str] | None = None,
    *,
    parallelism: int = 2,
    max_retries: int = 0,
    **spec: Any,
) -> dict[str, Any]:
    """A small sweep (100 steps, evaluations every 10) of the toy, misbehaving per `env`."""
    return {
        "apiVersion": "lrsweep.dev/v1alpha1",
        "kind": "LRSweep",
        "metadata": {"name": name},
        "spec": {
            "search": {"parallelism": parallelism, **search},
            "budget": {"steps": 100, "evalEvery": 10, "minSteps": 10},
            "trial": {
                "maxRetries": max_retries,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "toy",
                                "image": "toy",
                                "command": [sys.executable, str(TOY)],
                                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                            }
                        ]
                    }
                },
            },
            **spec,
        },
    }
