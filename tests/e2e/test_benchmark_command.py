"""`lrsweep benchmark` end to end, on a user's training script run as trial processes.

The script, tests/e2e/noisy_quadratic.py, reports through the reporting API without torch,
so a run takes a fraction of a second; the budget is 54 steps and the dense rates are 10x
apart (--ratio 10), so a benchmark takes seconds.

Covers: every strategy is reported with its pick, score, regret and compute; a strategy that
picks the dense best has no regret; compute is the steps its trials trained, in full runs;
every evaluation of a full run is recorded; the report is printed and written as JSON and
Markdown; with several seeds each strategy is also summarized over them; a second benchmark
trains nothing and launches no process; Ctrl-C stops every
trial, keeps the runs that finished and says how to go on (exit 130); a missing or invalid
document, a script that fails every run, one that does not report the objective (exit 2)
and rates that all diverge (exit 1) stop it with what to do; a ratio not above 1 is refused.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lrsweep import cli
from lrsweep.benchmark.report import JSON_FILE, MARKDOWN_FILE
from tests.e2e.commands import alive, children_running, lrsweep, start_lrsweep
from tests.e2e.toy import TOY, toy_sweep_doc

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("noisy_quadratic.py")
STEPS, EVERY = 54, 6
COARSE = ("--ratio", "10")  # dense rates 0.001, 0.01, 0.1 and 1: the grid's with candidates 4


def _document(cwd: Path, source: str | None = None) -> Path:
    """sweep.yaml in `cwd`, sweeping train.py there (the test script, or `source`)."""
    (cwd / "train.py").write_text(source if source is not None else SCRIPT.read_text())
    container = {"name": "trainer", "image": "python", "command": [sys.executable, "train.py"]}
    doc = {
        "apiVersion": "lrsweep.dev/v1alpha1",
        "kind": "LRSweep",
        "metadata": {"name": "quadratic"},
        "spec": {
            "search": {"min": 1e-3, "max": 1.0, "candidates": 4, "parallelism": 4},
            "budget": {"steps": STEPS, "evalEvery": EVERY, "minSteps": EVERY},
            "trial": {"maxRetries": 0, "template": {"spec": {"containers": [container]}}},
        },
    }
    path = cwd / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass(frozen=True)
class Benchmarked:
    done: subprocess.CompletedProcess[str]
    cwd: Path

    @property
    def cache(self) -> Path:
        (directory,) = (self.cwd / ".lrsweep-benchmark").iterdir()
        return directory

    def report(self) -> dict[str, Any]:
        assert self.done.returncode == 0, self.done.stdout + self.done.stderr
        result: dict[str, Any] = json.loads((self.cache / JSON_FILE).read_text())
        return result

    def row(self, strategy: str) -> dict[str, Any]:
        rows: list[dict[str, Any]] = self.report()["rows"]
        (row,) = [r for r in rows if r["strategy"] == strategy]
        return row

    def curves(self) -> dict[str, Any]:
        curves: dict[str, Any] = json.loads((self.cache / "curves.json").read_text())
        return curves


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory: pytest.TempPathFactory) -> Benchmarked:
    """One benchmark of the test script, shared by the tests that read its report."""
    cwd = tmp_path_factory.mktemp("benchmark")
    _document(cwd)
    return Benchmarked(lrsweep("benchmark", "sweep.yaml", *COARSE, cwd=cwd, timeout=300), cwd)


def test_every_strategy_is_reported_with_its_pick_score_regret_and_compute(
    benchmarked: Benchmarked,
) -> None:
    rows = benchmarked.report()["rows"]
    assert [r["strategy"] for r in rows] == ["adaptive", "grid", "random", "asha", "rangeTest"]
    for row in rows:
        assert row["rate"] is not None, row
        assert row["score"] > 0, row
        assert row["regret"] is not None, row
        assert row["compute_r"] > 0, row


def test_with_several_seeds_each_strategy_is_summarized_over_them(tmp_path: Path) -> None:
    _document(tmp_path)
    done = lrsweep("benchmark", "sweep.yaml", *COARSE, "--seeds", "2", cwd=tmp_path, timeout=300)
    report = Benchmarked(done, tmp_path).report()
    assert sorted({(r["strategy"], r["seed"]) for r in report["rows"]}) == sorted(
        (s, seed) for s in ("adaptive", "grid", "random", "asha", "rangeTest") for seed in (0, 1)
    )
    summary = {s["strategy"]: s for s in report["summary"]}
    assert summary["grid"]["seeds"] == 2
    assert summary["grid"]["mean_regret"] == pytest.approx(0.0)
    assert "each strategy over 2 seeds" in done.stdout


def test_a_strategy_that_picks_the_dense_best_has_no_regret(benchmarked: Benchmarked) -> None:
    (truth,) = benchmarked.report()["truths"]
    grid = benchmarked.row("grid")  # its 4 rates are the dense rates
    assert (grid["rate"], grid["score"]) == (truth["best_rate"], truth["best_score"])
    assert grid["regret"] == 0.0


def test_compute_is_the_steps_a_strategys_trials_trained_in_full_runs(
    benchmarked: Benchmarked,
) -> None:
    runs = [c for key, c in benchmarked.curves().items() if key.startswith("train:0:")]
    dense = [c for c in runs if c["rate"] in benchmarked.report()["dense_rates"]]
    assert len(dense) == 4
    assert benchmarked.row("grid")["compute_r"] == pytest.approx(
        sum(c["end"] for c in dense) / STEPS
    )


def test_every_evaluation_of_a_full_run_is_recorded(benchmarked: Benchmarked) -> None:
    finished = [
        c
        for key, c in benchmarked.curves().items()
        if key.startswith("train:") and c["end"] == STEPS
    ]
    assert finished
    for curve in finished:
        assert [step for step, _ in curve["points"]] == list(range(EVERY, STEPS + 1, EVERY))


def test_the_report_is_printed_and_written_as_json_and_markdown(benchmarked: Benchmarked) -> None:
    out = benchmarked.done.stdout
    assert "adaptive (yours)" in out
    assert "dense best: rate" in out
    cache = benchmarked.cache.relative_to(benchmarked.cwd)
    assert f"wrote {cache / JSON_FILE} and {cache / MARKDOWN_FILE}" in out
    markdown = (benchmarked.cache / MARKDOWN_FILE).read_text()
    assert "| grid | 0.1 |" in markdown


def test_a_second_benchmark_trains_nothing_and_launches_no_process(
    benchmarked: Benchmarked,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    again = Benchmarked(benchmarked.done, shutil.copytree(benchmarked.cwd, tmp_path / "again"))
    monkeypatch.chdir(again.cwd)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second benchmark started a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    assert cli.main(["benchmark", "sweep.yaml", *COARSE]) == cli.EXIT_OK
    capsys.readouterr()
    assert again.report()["runs_trained"] == 0
    assert again.report()["rows"] == benchmarked.report()["rows"]


def test_ctrl_c_stops_every_trial_and_keeps_the_runs_that_finished(tmp_path: Path) -> None:
    doc = toy_sweep_doc("slow", {"min": 1e-3, "max": 1.0}, {"TOY_BEHAVIOUR": "slow"})
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(doc))
    proc = start_lrsweep("benchmark", "sweep.yaml", *COARSE, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(
        tmp_path.glob(".lrsweep-benchmark/*/curves.json")
    ):
        time.sleep(0.1)  # the range test is over: the full runs start
    time.sleep(1.0)
    children = children_running(proc, TOY)
    assert children, "full runs should be training"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert "the same command goes on from there" in " ".join(out.split())
    assert not [pid for pid in children if alive(pid)]
    (curves,) = tmp_path.glob(".lrsweep-benchmark/*/curves.json")
    assert any(key.startswith("range:") for key in json.loads(curves.read_text()))


def _refused(tmp_path: Path, *args: str, code: int = cli.EXIT_BAD_INPUT) -> str:
    done = lrsweep("benchmark", *args, *COARSE, cwd=tmp_path, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return " ".join(done.stderr.split())


def test_a_missing_document_is_refused_naming_it(tmp_path: Path) -> None:
    assert "nope.yaml: cannot read" in _refused(tmp_path, "nope.yaml")


def test_an_invalid_document_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = _document(tmp_path)
    path.write_text(path.read_text().replace("max: 1.0", "max: 0.0001"))
    assert "min (0.001) must be below max (0.0001)" in _refused(tmp_path, "sweep.yaml")


def test_a_script_that_fails_every_run_stops_the_benchmark_with_its_error(
    tmp_path: Path,
) -> None:
    _document(tmp_path, "raise SystemExit('no training data in ./data')\n")
    err = _refused(tmp_path, "sweep.yaml")
    assert "no training data in ./data" in err
    assert "the trials' logs are in .lrsweep-benchmark/" in err


REPORTS_LOSS_ONLY = """
from lrsweep_trainer import report
with report.start() as session:
    for step in range(1, session.max_steps + 1):
        if session.log_step(step, 1.0 / step):
            break
        if session.should_evaluate(step) and session.log(step, loss=1.0 / step):
            break
"""


def test_a_script_without_the_objective_is_refused_naming_what_it_reports(
    tmp_path: Path,
) -> None:
    _document(tmp_path, REPORTS_LOSS_ONLY)
    err = _refused(tmp_path, "sweep.yaml")
    assert "the objective metric 'val_loss' is not reported" in err
    assert "reported loss" in err


ALWAYS_DIVERGES = """
from lrsweep_trainer import report
with report.start() as session:
    for step in range(1, session.max_steps + 1):
        if session.log_step(step, 1e6 * step):
            break
        if session.should_evaluate(step) and session.log(step, val_loss=float("nan")):
            break
"""


def test_rates_that_all_diverge_stop_the_benchmark_saying_what_to_change(
    tmp_path: Path,
) -> None:
    _document(tmp_path, ALWAYS_DIVERGES)
    err = _refused(tmp_path, "sweep.yaml", code=cli.EXIT_SWEEP_FAILED)
    assert "no rate from 0.001 to 1 finished its budget at seed 0 (4 of 4 runs diverged" in err
    assert "search lower rates (search.max)" in err


def test_a_ratio_not_above_1_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["benchmark", "sweep.yaml", "--ratio", "1"])
    assert refused.value.code == cli.EXIT_BAD_INPUT
    assert "give the ratio between neighbouring rates, a number above 1" in capsys.readouterr().err
