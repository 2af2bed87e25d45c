"""The time as the status records it: both runtimes stamp conditions and times with it."""

from __future__ import annotations

import datetime as dt


def timestamp() -> str:
    """Now, as Kubernetes writes times: RFC 3339 in UTC, to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
