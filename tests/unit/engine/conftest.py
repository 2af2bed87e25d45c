from __future__ import annotations

from typing import Any

from lrsweep.api import LRSweepSpec

TEMPLATE = {"spec": {"containers": [{"name": "trainer", "image": "trainer:dev"}]}}


def make_spec(**sections: dict[str, Any]) -> LRSweepSpec:
    """A valid spec with small budgets; keyword arguments override whole sections' fields."""
    doc: dict[str, Any] = {
        "search": {"min": 1e-4, "max": 10.0, "candidates": 8, "parallelism": 3},
        "budget": {"steps": 300, "evalEvery": 25, "minSteps": 25, "reductionFactor": 3},
        "trial": {"template": TEMPLATE},
    }
    for name, fields in sections.items():
        doc.setdefault(name, {}).update(fields)
    return LRSweepSpec.model_validate(doc)
