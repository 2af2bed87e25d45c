"""The operator's settings (LRSWEEP_* variables, set by the chart).

Covers: the namespaces kopf watches (the ones named, else the operator's own, none when
cluster-wide); naming namespaces and cluster-wide together is an error that says so, and so
is a progress deadline not above the gate timeout.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lrsweep.settings import OperatorSettings


def test_watches_the_namespaces_named_else_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRSWEEP_POD_NAMESPACE", "lrsweep-system")
    assert OperatorSettings().watched_namespaces() == ["lrsweep-system"]
    monkeypatch.setenv("LRSWEEP_NAMESPACES", "team-a, team-b")
    assert OperatorSettings().watched_namespaces() == ["team-a", "team-b"]


def test_cluster_wide_names_no_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    # kopf refuses cluster-wide together with namespaces.
    monkeypatch.setenv("LRSWEEP_CLUSTERWIDE", "true")
    assert OperatorSettings().watched_namespaces() == []


def test_cluster_wide_and_named_namespaces_together_are_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LRSWEEP_CLUSTERWIDE", "true")
    monkeypatch.setenv("LRSWEEP_NAMESPACES", "team-a")
    with pytest.raises(ValidationError, match="names team-a: set one of the two"):
        OperatorSettings()


def test_a_progress_deadline_not_above_the_gate_timeout_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LRSWEEP_GATE_TIMEOUT", "600")
    monkeypatch.setenv("LRSWEEP_PROGRESS_DEADLINE_SECONDS", "600")
    with pytest.raises(ValueError, match="must exceed LRSWEEP_GATE_TIMEOUT"):
        OperatorSettings()
