"""The time as the status records it: both runtimes stamp conditions and times with it, and
the operator reads the times Kubernetes writes back (`parse_timestamp`)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def timestamp() -> str:
    """Now, as Kubernetes writes times: RFC 3339 in UTC, to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: Any) -> dt.datetime | None:
    """A time as Kubernetes or the status writes it, as an aware datetime (UTC when it names
    no zone); None when it is not one."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
