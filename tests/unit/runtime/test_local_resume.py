"""What a local sweep keeps in its directory, and resuming from it (`lrsweep run --resume`).

Covers: the status file is replaced whole, and is strict JSON even when a trainer reported
an infinite score (which reads back in the same order); starting a sweep where one ran is refused,
keeping its results, unless asked to overwrite them (then nothing of it is left); a sweep
resumes from the status and document in its directory (decided trials kept with their curves
from their summaries, running ones relaunched, the start time kept); resuming is refused,
saying what to do, when the directory holds no sweep, holds a different one (naming what
differs) or an unreadable status.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from lrsweep.api import LRSweep, LRSweepStatus, SpecError, TrialPhase, TrialStatus, parse_sweep
from lrsweep.runtime.local import (
    REPORT_FILE,
    RESULT_FILE,
    SWEEP_FILE,
    attempt_files,
    resume,
    save_sweep,
    start_afresh,
    write_status,
)
from tests.unit.engine.conftest import TEMPLATE


def _sweep(**budget: Any) -> LRSweep:
    return parse_sweep(
        {
            "apiVersion": "lrsweep.dev/v1alpha1",
            "kind": "LRSweep",
            "metadata": {"name": "demo"},
            "spec": {
                "search": {"strategy": "grid", "values": [0.01, 0.1]},
                "budget": {"steps": 100, "evalEvery": 50, "minSteps": 50, **budget},
                "trial": {"template": TEMPLATE},
            },
        }
    )


def _status() -> LRSweepStatus:
    return LRSweepStatus(
        startTime="2026-11-29T22:00:00Z",
        trials={
            "t000": TrialStatus(
                learningRate=0.01,
                phase=TrialPhase.SUCCEEDED,
                step=100,
                attempts=1,
                queued=False,
                rungs={"100": 0.2},
            ),
            "t001": TrialStatus(
                learningRate=0.1, phase=TrialPhase.RUNNING, step=50, attempts=1, queued=False
            ),
        },
    )


def _summary(trial: str, values: list[float]) -> str:
    steps = [50 * i for i in range(len(values))]
    history = {"step": steps, "val_loss": values}
    return json.dumps({"v": 1, "trial": trial, "status": "finished", "history": history})


def _saved(directory: Path, sweep: LRSweep | None = None) -> Path:
    (directory / "trials").mkdir()
    save_sweep(directory, sweep or _sweep())
    write_status(directory, _status())
    return directory


def test_the_status_file_is_replaced_whole(tmp_path: Path) -> None:
    write_status(tmp_path, _status())
    write_status(tmp_path, LRSweepStatus(message="later"))
    assert json.loads((tmp_path / RESULT_FILE).read_text())["message"] == "later"
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESULT_FILE]


def _infinite_status() -> LRSweepStatus:
    status = _status()
    status.trials["t000"].rungs = {"50": -math.inf, "100": math.inf}
    status.bestScore = math.inf
    return status


def _reject(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def test_an_infinite_score_is_written_as_strict_json(tmp_path: Path) -> None:
    write_status(tmp_path, _infinite_status())
    saved = json.loads((tmp_path / RESULT_FILE).read_text(), parse_constant=_reject)
    assert saved["bestScore"] == sys.float_info.max
    assert saved["trials"]["t000"]["rungs"] == {
        "50": -sys.float_info.max,
        "100": sys.float_info.max,
    }


def test_an_infinite_score_reads_back_in_the_same_order(tmp_path: Path) -> None:
    (tmp_path / "trials").mkdir()
    save_sweep(tmp_path, _sweep())
    write_status(tmp_path, _infinite_status())
    rungs = resume(tmp_path, _sweep()).records[0].rungs
    assert sorted(rungs, key=rungs.__getitem__) == [50, 100]
    assert rungs[100] > 1e300


def test_starting_a_sweep_where_one_ran_is_refused_keeping_its_results(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    with pytest.raises(SpecError, match=r"holds an earlier sweep \(demo: .*--resume.*--overwrite"):
        start_afresh(directory, _sweep(steps=200), overwrite=False)
    assert (directory / RESULT_FILE).exists()
    assert resume(directory, _sweep()).records


def test_overwrite_starts_afresh_deleting_the_earlier_sweeps_results(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    attempt_files(directory, "t000", 1).with_suffix(".log").write_text("earlier")
    (directory / REPORT_FILE).write_bytes(b"earlier")
    start_afresh(directory, _sweep(steps=200), overwrite=True)
    assert sorted(p.name for p in directory.iterdir()) == [SWEEP_FILE, "trials"]
    assert not list((directory / "trials").iterdir())
    assert json.loads((directory / SWEEP_FILE).read_text())["spec"]["budget"]["steps"] == 200


def test_a_resumed_sweep_keeps_its_decided_trials(tmp_path: Path) -> None:
    state = resume(_saved(tmp_path), _sweep())
    decided = state.records[0]
    assert (decided.id, decided.phase, dict(decided.rungs)) == (
        "t000",
        TrialPhase.SUCCEEDED,
        {100: 0.2},
    )


def test_a_resumed_sweep_relaunches_the_trials_that_were_running(tmp_path: Path) -> None:
    state = resume(_saved(tmp_path), _sweep())
    again = state.records[1]
    assert state.relaunched == ("t001",)
    assert (again.queued, again.step, again.spent_steps) == (True, 0, 50)


def test_a_resumed_sweep_keeps_its_start_time(tmp_path: Path) -> None:
    assert resume(_saved(tmp_path), _sweep()).start_time == "2026-11-29T22:00:00Z"


def test_a_resumed_sweep_gets_the_curves_of_decided_trials_from_their_summaries(
    tmp_path: Path,
) -> None:
    directory = _saved(tmp_path)
    summary = attempt_files(directory, "t000", 1).with_suffix(".summary.json")
    summary.write_text(_summary("t000", [1.0, 0.5, 0.2]))
    decided = resume(directory, _sweep()).records[0]
    assert [(p.step, p.metrics["val_loss"]) for p in decided.points] == [
        (0, 1.0),
        (50, 0.5),
        (100, 0.2),
    ]


def test_a_decided_trial_whose_summary_is_gone_keeps_its_result(tmp_path: Path) -> None:
    decided = resume(_saved(tmp_path), _sweep()).records[0]
    assert decided.points == ()
    assert dict(decided.rungs) == {100: 0.2}


def test_resuming_where_no_sweep_ran_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError,
        match=rf"holds no sweep of `lrsweep run` \({SWEEP_FILE} is missing\); run without "
        "--resume to start the sweep there",
    ):
        resume(tmp_path, _sweep())


def test_resuming_with_a_changed_document_is_refused_naming_the_change(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    with pytest.raises(
        SpecError,
        match=r"different document \(spec\.budget\.steps: 100 -> 200\); resume with the "
        r"document it ran",
    ):
        resume(directory, _sweep(steps=200))


def test_resuming_a_sweep_of_another_name_is_refused(tmp_path: Path) -> None:
    other = _sweep().model_copy(
        update={"metadata": _sweep().metadata.model_copy(update={"name": "other"})}
    )
    directory = _saved(tmp_path, other)
    with pytest.raises(SpecError, match=r"metadata\.name: 'other' -> 'demo'"):
        resume(directory, _sweep())


def test_resuming_from_an_unreadable_status_is_refused_naming_the_file(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    (directory / RESULT_FILE).write_text('{"phase": "Sideways"}')
    with pytest.raises(
        SpecError,
        match=rf"{RESULT_FILE} is not a saved LRSweepStatus \(phase: .*run without --resume",
    ):
        resume(directory, _sweep())
