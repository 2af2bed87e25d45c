"""The retries benchmark (`python -m benchmarks.retries`).

Covers: `--quick` runs the quickstart on a short budget as it is, with every trial's first
training attempt killed halfway and retried from its checkpoint, and killed the same way
without checkpoints, through real trial processes; all three pick the same winner, the
retries with checkpoints go on from them and train far fewer steps again than those
without, and the report says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.retries import VARIANTS
from tests.benchmarks.running import run_module


def test_quick_run_retries_killed_trials_from_their_checkpoints(tmp_path: Path) -> None:
    run_module("benchmarks.retries", "--quick", "--out", str(tmp_path))
    result = json.loads((tmp_path / "retries.json").read_text())
    plain, kept, lost = (result["variants"][v] for v in VARIANTS)
    assert plain["learning_rate"] is not None
    assert kept["learning_rate"] == lost["learning_rate"] == plain["learning_rate"]
    assert kept["attempts"] > plain["attempts"]
    assert kept["resumed"]
    assert lost["resumed"] == []
    assert kept["trained_again_r"] < 0.5 * lost["trained_again_r"]
    assert "Steps trained again with checkpoints / without" in (tmp_path / "retries.md").read_text()
