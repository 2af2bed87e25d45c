"""The search-efficiency benchmark on a user's own script (`--script`).

Covers: `--script PATH --quick` benchmarks that script alone (no built-in task), through
real trial processes, with the budget and range given on the command line, and records the
script's path and content digest; `adaptive` finds the script's good rates; `--rerender`
rebuilds such results; results go under out/ unless `--out` says otherwise; editing the
script changes its cache key; a missing script, a budget the API refuses and budget flags
without `--script` are refused with what to fix, and a script that fails, reports no
val_loss or diverges at every rate stops the benchmark with exit code 2 and the reason;
`--metric` makes another reported metric the objective, and `--goal maximize` one that is
better higher (the ground truth's best, the regrets and the report follow it); a metric
that is not positive at some rate stops the benchmark with what to do, since regret is a
ratio.
The script, tests/benchmarks/scripts/noisy_quadratic.py, is SGD on a noisy quadratic
without torch, so a trial is quick.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import benchmarks.search_efficiency as se
from lrsweep.api import Goal
from tests.benchmarks.running import run_module

SCRIPT = Path(__file__).parent / "scripts" / "noisy_quadratic.py"
# The quadratic's curvatures go up to 10: rates from 0.2 diverge; below 0.01 it has not
# converged in 54 steps (the ground truth's loss is 25x the best there).
CONVERGING = (0.01, 0.2)
FLAGS = ("--steps", "54", "--eval-every", "6", "--range", "1e-4", "10")


@pytest.fixture(scope="module")
def script_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("script-benchmark")
    run_module(
        "benchmarks.search_efficiency",
        "--quick",
        "--jobs",
        "2",
        "--script",
        str(SCRIPT),
        *FLAGS,
        "--out",
        str(out),
    )
    return out


def _result(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / "search-efficiency.json").read_text())
    return result


def test_a_script_is_benchmarked_alone_with_the_budget_given(script_run: Path) -> None:
    result = _result(script_run)
    assert list(result["tasks"]) == ["noisy-quadratic"]
    task = result["tasks"]["noisy-quadratic"]
    assert (task["steps"], task["evalEvery"], task["range"]) == (54, 6, [1e-4, 10.0])
    assert {run["strategy"] for run in result["runs"]} == set(se.STRATEGIES)


def test_a_scripts_results_name_its_path_and_content(script_run: Path) -> None:
    task = _result(script_run)["tasks"]["noisy-quadratic"]
    assert task["trainer"]["command"][-1] == str(SCRIPT.resolve())
    assert task["script_sha256"] == hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12]
    assert "--script" in _result(script_run)["command"]


def test_a_scripts_report_says_its_cache_follows_the_script(script_run: Path) -> None:
    text = (script_run / "search-efficiency.md").read_text()
    assert "keyed by the script's content" in text
    assert "benchmarks/results/ground-truth" not in text


def test_adaptive_picks_a_rate_where_the_script_converges(script_run: Path) -> None:
    (adaptive,) = [r for r in _result(script_run)["runs"] if r["strategy"] == "adaptive"]
    low, high = CONVERGING
    assert low < adaptive["chosen_lr"] < high


def test_rerender_rebuilds_a_scripts_results_without_running(
    script_run: Path, tmp_path: Path
) -> None:
    out = shutil.copytree(script_run, tmp_path / "copy")
    (out / "search-efficiency.md").unlink()
    run_module("benchmarks.search_efficiency", "--rerender", "--out", str(out))
    assert _result(out)["runs"] == _result(script_run)["runs"]
    assert (out / "search-efficiency.md").read_text() == (
        script_run / "search-efficiency.md"
    ).read_text()


def _task(path: Path, **budget: Any) -> se.BenchTask:
    given: dict[str, Any] = {
        "steps": 54,
        "eval_every": 6,
        "min_steps": None,
        "low": 1e-4,
        "high": 10.0,
    }
    return se.user_task(path, **{**given, **budget})


def test_a_scripts_results_go_under_out_not_the_committed_results() -> None:
    task = _task(SCRIPT)
    assert se.script_out(task, quick=False) == se.ROOT / "out" / "search-efficiency-noisy-quadratic"
    assert se.script_out(task, quick=True).name == "search-efficiency-noisy-quadratic-quick"


def test_a_scripts_name_becomes_a_task_name_the_api_accepts(tmp_path: Path) -> None:
    script = tmp_path / "My_Train.v2.py"
    script.write_text("print()\n")
    task = _task(script)
    assert task.name == "my-train-v2"
    se.sweep_doc(task, 0, "adaptive", {})  # the API validates the sweep's name


def test_editing_the_script_changes_its_cache_key(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("loss = 1\n")
    rates = se.dense_rates(_task(script), 9)
    before = se.config_hash(_task(script), rates)
    script.write_text("loss = 2\n")
    assert se.config_hash(_task(script), rates) != before


def test_another_metric_becomes_the_sweeps_objective_and_part_of_the_cache_key() -> None:
    task = _task(SCRIPT, metric="val_mse")
    doc = se.sweep_doc(task, 0, "adaptive", {})
    assert (doc.spec.objective.metric, doc.spec.objective.goal.value) == ("val_mse", "minimize")
    rates = se.dense_rates(task, 9)
    assert se.config_hash(task, rates) != se.config_hash(_task(SCRIPT), rates)


def test_the_first_rung_defaults_to_a_ninth_of_the_budget() -> None:
    task = _task(SCRIPT, steps=270, eval_every=None)
    assert (task.eval_every, task.min_steps) == (15, 30)


def _refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        se.main(list(argv))
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_a_missing_script_is_refused_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.py"
    assert f"--script {missing}: no such file" in _refusal(capsys, "--script", str(missing))


def test_a_budget_the_api_refuses_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _refusal(capsys, "--script", str(SCRIPT), "--steps", "40", "--min-steps", "50")
    assert "minSteps (50) must not exceed steps (40)" in err


def test_a_range_the_api_refuses_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _refusal(capsys, "--script", str(SCRIPT), "--range", "1", "0.1")
    assert "min (1) must be below max (0.1)" in err


def test_a_metric_name_the_api_refuses_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(capsys, "--script", str(SCRIPT), "--metric", "val loss")
    assert "the budget, range or metric for --script is not valid (metric:" in err


def test_budget_flags_without_a_script_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(capsys, "--quick", "--steps", "54", "--seeds", "2")
    assert "--steps, --seeds only apply with --script" in err


def test_a_goal_without_a_script_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(capsys, "--quick", "--goal", "maximize")
    assert "--goal only applies with --script" in err


def test_a_maximized_goal_becomes_the_sweeps_objective_and_part_of_the_cache_key() -> None:
    task = _task(SCRIPT, metric="val_acc", goal=Goal.MAXIMIZE)
    doc = se.sweep_doc(task, 0, "adaptive", {})
    assert doc.spec.objective.goal is Goal.MAXIMIZE
    rates = se.dense_rates(task, 9)
    assert se.config_hash(task, rates) != se.config_hash(replace(task, goal=Goal.MINIMIZE), rates)


def test_a_script_with_built_in_tasks_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(capsys, "--script", str(SCRIPT), "--task", "custom")
    assert "--script replaces the built-in tasks" in err


REPORTS_LOSS_ONLY = """
from lrsweep_trainer import report
with report.start(max_steps=30, eval_every=6) as session:
    for step in range(1, session.max_steps + 1):
        if session.log_step(step, 1.0 / step):
            break
        if session.should_evaluate(step) and session.log(step, loss=1.0 / step):
            break
"""
FAILS = "raise SystemExit('no training data in ./data')\n"
ALWAYS_DIVERGES = """
from lrsweep_trainer import report
with report.start(max_steps=30, eval_every=6) as session:
    for step in range(1, session.max_steps + 1):
        if session.log_step(step, 1e6 * step):
            break
        if session.should_evaluate(step) and session.log(step, val_loss=float("nan")):
            break
"""


def _benchmark_fails(tmp_path: Path, source: str) -> str:
    script = tmp_path / "train.py"
    script.write_text(source)
    args = ("--quick", "--script", str(script), "--steps", "30", "--eval-every", "6")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_efficiency", *args, "--out", str(tmp_path)],
        cwd=se.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_script_without_val_loss_stops_the_benchmark_naming_the_metric(tmp_path: Path) -> None:
    err = _benchmark_fails(tmp_path, REPORTS_LOSS_ONLY)
    assert "the objective metric 'val_loss' is not reported" in err
    assert "scores this task by its val_loss, lower is better; --metric names another" in err


def _reporting(tmp_path: Path, reported: str, *flags: str) -> dict[str, Any]:
    """The quick results for the test script reporting `reported` instead of val_loss."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.read_text().replace("val_loss=loss", reported))
    run_module(
        "benchmarks.search_efficiency",
        *("--quick", "--script", str(script), *FLAGS, *flags, "--out", str(tmp_path / "out")),
    )
    return _result(tmp_path / "out")


def test_metric_scores_a_script_by_the_metric_it_reports(tmp_path: Path) -> None:
    result = _reporting(tmp_path, "val_mse=loss", "--metric", "val_mse")
    assert result["tasks"]["train"]["metric"] == "val_mse"
    (adaptive,) = [r for r in result["runs"] if r["strategy"] == "adaptive"]
    low, high = CONVERGING
    assert low < adaptive["chosen_lr"] < high


def test_goal_maximize_scores_a_script_by_a_metric_better_higher(tmp_path: Path) -> None:
    flags = ("--metric", "val_score", "--goal", "maximize")
    result = _reporting(tmp_path, "val_score=1 / (1 + loss)", *flags)
    task = result["tasks"]["train"]
    assert (task["metric"], task["goal"]) == ("val_score", "maximize")
    low, high = CONVERGING
    assert low < task["dense_best"]["0"]["lr"] < high
    (adaptive,) = [r for r in result["runs"] if r["strategy"] == "adaptive"]
    assert low < adaptive["chosen_lr"] < high
    best = task["dense_best"]["0"]["score"]
    assert adaptive["regret"] == pytest.approx(best / adaptive["score"] - 1, abs=1e-5)
    report = (tmp_path / "out" / "search-efficiency.md").read_text()
    assert (
        "train's val_score is maximized: best dense-grid score / score(chosen rate) - 1" in report
    )


def test_a_metric_that_is_not_positive_stops_the_benchmark_saying_why(tmp_path: Path) -> None:
    err = _benchmark_fails(tmp_path, REPORTS_LOSS_ONLY.replace("loss=1.0", "val_loss=-1.0"))
    assert "val_loss was -" in err
    assert "the metric must stay above 0 at every rate" in err


def test_a_script_that_fails_stops_the_benchmark_with_its_error(tmp_path: Path) -> None:
    assert "no training data in ./data" in _benchmark_fails(tmp_path, FAILS)


def test_a_script_diverging_at_every_rate_stops_the_benchmark(tmp_path: Path) -> None:
    err = _benchmark_fails(tmp_path, ALWAYS_DIVERGES)
    assert "no rate from 0.0001 to 10 finished its budget" in err


def test_no_seeds_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--seeds must be at least 1" in _refusal(capsys, "--script", str(SCRIPT), "--seeds", "0")
