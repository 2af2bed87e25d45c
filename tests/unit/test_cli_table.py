"""The trials table `lrsweep run` and `lrsweep report` print (`lrsweep.cli.progress_table`).

Covers: a trial rebuilt from a status (no curve) shows its last rung value; an infinite
score, which a JSON-safe status holds as the largest float, shows as inf.
"""

from __future__ import annotations

import sys

from rich.console import Console

from lrsweep.api import TrialPhase
from lrsweep.cli import progress_table
from lrsweep.engine.sweep import Decision
from lrsweep.engine.trials import TrialRecord


def _shown(*records: TrialRecord) -> str:
    decision = Decision(records, (), (), (), True, None, None, "sweep")
    console = Console(record=True, width=100)
    console.print(progress_table(decision, "val_loss", console.width))
    return console.export_text()


def test_a_trial_rebuilt_from_a_status_shows_its_last_rung_value() -> None:
    rebuilt = TrialRecord("t000", 0.01, 0, phase=TrialPhase.STOPPED, rungs={30: 0.25, 10: 0.5})
    (row,) = [line for line in _shown(rebuilt).splitlines() if line.startswith("t000")]
    assert row.split()[4:6] == ["0.25", "30"]


def test_an_infinite_score_read_back_from_a_status_shows_as_inf() -> None:
    diverged = TrialRecord(
        "t000", 1.0, 0, phase=TrialPhase.DIVERGED, rungs={30: sys.float_info.max}
    )
    (row,) = [line for line in _shown(diverged).splitlines() if line.startswith("t000")]
    assert row.split()[4:6] == ["inf", "30"]
