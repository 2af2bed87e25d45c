"""Fault injection for API requests: 500s, 429s with Retry-After, latency, and watch streams
that end early. Configured at start (`Harness(faults=Faults(...))`), from Python
(`harness.set_faults(...)`) or over HTTP (`PUT/PATCH /_harness/faults`). The `/_harness/*`
admin endpoints are never subject to faults.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any


@dataclasses.dataclass
class Faults:
    error_rate: float = 0.0
    """Fraction of requests answered `500 InternalError`."""
    throttle_rate: float = 0.0
    """Fraction of requests answered `429 TooManyRequests` with a `Retry-After` header."""
    retry_after: int = 1
    """Seconds announced in `Retry-After` of the 429 answers."""
    latency: float = 0.0
    """Seconds added before every request is handled."""
    watch_timeout: float | None = None
    """Watch streams end (cleanly, as a server-side timeout) after this many seconds."""
    match: str = ""
    """Only requests whose `METHOD /path?query` matches this regular expression get faults."""
    budget: int | None = None
    """At most this many error answers (500 + 429) in total; then errors stop. None: no limit."""
    seed: int | None = None
    """Seed of the random draws, for reproducible runs."""

    injected: int = 0
    """How many error answers have been injected so far (read-only for callers)."""

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.check()

    def check(self) -> None:
        for name in ("error_rate", "throttle_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value!r}")
        if self.error_rate + self.throttle_rate > 1.0:
            raise ValueError("error_rate + throttle_rate must not exceed 1")
        if self.latency < 0 or self.retry_after < 0:
            raise ValueError("latency and retry_after must not be negative")
        re.compile(self.match)

    def update(self, **changes: Any) -> None:
        known = {f.name for f in dataclasses.fields(self)} - {"injected"}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        previous = self.as_dict()
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self.check()
        except ValueError:
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        if "seed" in changes:
            self._random = random.Random(self.seed)

    def reset(self) -> None:
        """Back to no faults at all."""
        self.update(
            **{f.name: f.default for f in dataclasses.fields(Faults) if f.name != "injected"}
        )
        self.injected = 0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def draw(self, request_line: str) -> int | None:
        """The status code to fail this request with, if any."""
        if self.match and not re.search(self.match, request_line):
            return None
        if self.budget is not None and self.injected >= self.budget:
            return None
        roll = self._random.random()
        code = None
        if roll < self.error_rate:
            code = 500
        elif roll < self.error_rate + self.throttle_rate:
            code = 429
        if code is not None:
            self.injected += 1
        return code

    def applies_to(self, request_line: str) -> bool:
        return not self.match or re.search(self.match, request_line) is not None
