"""The status's timestamps are Kubernetes' format: RFC 3339, UTC, whole seconds."""

from __future__ import annotations

import datetime as dt
import re

from lrsweep.runtime.clock import timestamp


def test_a_timestamp_is_utc_to_the_second_in_rfc_3339() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = timestamp()
    after = dt.datetime.now(dt.UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert before <= dt.datetime.fromisoformat(stamp) <= after
