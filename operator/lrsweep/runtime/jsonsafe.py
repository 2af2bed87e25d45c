"""Statuses as JSON can carry them (`json_safe`, which both runtimes write them through), and
the numbers read back from them as they were reported (`as_reported`)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with its infinite numbers as the largest finite ones, which JSON can carry.

    A trainer may report an infinite objective (a loss that overflowed). Python's `json` would
    write it as `Infinity`, which is not JSON: the API server refuses such a status write, and
    `jq` or any other strict reader refuses such a result.json. +/-sys.float_info.max keep the
    order of every comparison with a finite value when the status is read back, so the engine
    decides the same. NaN has no order to keep and becomes null; only an optional score can be
    NaN (the engine drops NaN rung values)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else math.copysign(sys.float_info.max, value)
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def as_reported(value: float) -> float:
    """A number read back from a JSON-safe status, as the trainer reported it: +/-inf where
    `json_safe` wrote the largest float (for display; the engine compares either the same)."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value
