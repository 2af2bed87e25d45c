"""`lrsweep run` end to end, through real subprocesses.

Covers: the quickstart prints a winner and writes result.json and report.png; a user's own
script (reporting API) sweeps with explicit values, and crashing trials get a failed verdict
while the sweep goes on; trials run in the container's workingDir; a trial serving garbage
metrics gets a reason; bad input exits 2
with a one-line error (missing file, a file that is not text, invalid YAML, unknown field,
min >= max, a command that does not exist, a misspelt container field, a workingDir that is
not a directory here, an --out that cannot
be created, a poll interval that is not positive, an unknown task: a usage error, tried
once); a signal while the result is written does not cut it short; an objective the trials
do not report fails the sweep, with early stopping too (no trial waits at a rung for a
decision that cannot come); Ctrl-C stops every trial process and writes the partial result,
saying how to resume; a new sweep where one ran is refused unless --overwrite; `--resume`
keeps the decided trials of an interrupted sweep (not trained again) and finishes the rest,
its relaunched trials going on from their checkpoints, and refuses a directory where no
sweep ran; a finished sweep leaves no checkpoints; ASHA's stopped trials spend no steps past their
rung; with two seeds per rate, each rate is kept or cut whole and the winner scores the mean
of its seeds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.commands import alive, children_running, lrsweep, start_lrsweep
from tests.e2e.conftest import QUICKSTART, LocalRun
from tests.e2e.toy import TOY, toy_sweep_doc

pytestmark = pytest.mark.e2e


def toy_sweep(
    tmp_path: Path, search: dict[str, Any], env: dict[str, str] | None = None, **spec: Any
) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(toy_sweep_doc("toy", search, env, **spec)))
    return path


def test_quickstart_prints_a_winner_and_writes_result_and_plot(
    local_quickstart: LocalRun,
) -> None:
    done = local_quickstart.done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best learning rate:" in done.stdout
    result = local_quickstart.result()
    assert result["phase"] == "Succeeded"
    assert result["bestTrial"] in result["trials"]
    assert result["bestLearningRate"] == result["trials"][result["bestTrial"]]["learningRate"]
    assert all(t["verdict"] and t["reason"] for t in result["trials"].values())
    png = (local_quickstart.out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_a_winner_at_the_edge_of_the_rates_tried_is_pointed_out(tmp_path: Path) -> None:
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05, 0.5, 3.0]})
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: the best rate is the lowest tried" in " ".join(done.stdout.split())


def test_a_users_script_is_swept_and_the_best_value_wins(tmp_path: Path) -> None:
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.01, 0.05, 0.5, 3.0]})
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["bestLearningRate"] == 0.05
    by_rate = {t["learningRate"]: t for t in result["trials"].values()}
    assert by_rate[3.0]["verdict"] == "diverged"
    assert by_rate[0.01]["verdict"] in ("too-slow", "plateau")


def test_crashing_trials_get_a_failed_verdict_and_the_sweep_goes_on(tmp_path: Path) -> None:
    env = {"TOY_CRASH_ABOVE": "0.2"}
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05, 0.1, 0.5]}, env=env)
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    crashed = next(t for t in result["trials"].values() if t["learningRate"] == 0.5)
    assert crashed["phase"] == "Failed"
    assert crashed["verdict"] == "failed"
    assert "exit code 1: toy: crashing at rate 0.5" in crashed["reason"]
    assert result["bestLearningRate"] == 0.05


def test_garbage_metrics_give_a_reason_not_a_crash(tmp_path: Path) -> None:
    env = {"TOY_BEHAVIOUR": "garbage"}
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.1]}, env=env)
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    result = json.loads((tmp_path / "result.json").read_text())
    reason = result["trials"]["t000"]["reason"]
    assert "exited without a result (no summary written: does it report through" in reason
    assert "lrsweep_trainer.report" in reason
    assert "Traceback" not in done.stderr


def test_a_trial_template_that_cannot_start_fails_fast_with_exit_code_2(tmp_path: Path) -> None:
    env = {"TOY_BEHAVIOUR": "crash"}
    path = toy_sweep(tmp_path, {"strategy": "grid", "candidates": 8}, env=env)
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    assert "trials fail before their first step" in done.stderr
    assert "toy: crashing on purpose" in done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["trials"]) < 8 or any(t["attempts"] == 0 for t in result["trials"].values())


def test_trials_run_in_the_containers_working_dir(tmp_path: Path) -> None:
    # As in an image whose WORKDIR holds the script: `python train.py` from workingDir.
    work = tmp_path / "app"
    work.mkdir()
    shutil.copy(TOY, work / "train.py")
    doc = toy_sweep_doc("workdir", {"strategy": "grid", "values": [0.05]})
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "train.py"]
    container["workingDir"] = str(work)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = lrsweep("run", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "out" / "result.json").read_text())["bestLearningRate"] == 0.05


@pytest.mark.parametrize("strategy", ["grid", "asha"])
def test_an_objective_the_trials_do_not_report_fails_fast_with_exit_code_2(
    tmp_path: Path, strategy: str
) -> None:
    search = {"strategy": strategy, "candidates": 8}
    path = toy_sweep(tmp_path, search, objective={"metric": "acc"})
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    assert "the objective metric 'acc' is not reported" in done.stderr
    assert "set spec.objective.metric" in done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["phase"] == "Failed"
    assert any(t["attempts"] == 0 for t in result["trials"].values())
    # With asha trials pause at rungs: none waits out its gate for a decision that cannot come.
    logs = "".join(p.read_text() for p in (tmp_path / "trials").glob("*.log"))
    assert "no decision at rung" not in logs
    if strategy == "asha":
        assert "the sweep compares 'acc', not in this report" in logs


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("spec: [\n", "invalid YAML at line"),
        (
            "apiVersion: lrsweep.dev/v1alpha1\nkind: LRSweep\nmetadata: {name: x}\n"
            "spec: {searchh: {}, trial: {template: {spec: {containers: [{name: a, image: b}]}}}}\n",
            "spec.searchh: unknown field",
        ),
        (
            "apiVersion: lrsweep.dev/v1alpha1\nkind: LRSweep\nmetadata: {name: x}\n"
            "spec: {search: {min: 1, max: 0.5}, trial: {template: {spec: "
            "{containers: [{name: a, image: b}]}}}}\n",
            "min (1) must be below max (0.5)",
        ),
        (
            "apiVersion: lrsweep.dev/v1alpha1\nkind: LRSweep\nmetadata: {name: x}\n"
            "spec: {trial: {template: {spec: {containers: [{name: a, image: b, "
            "command: [no-such-program-xyz]}]}}}}\n",
            "'no-such-program-xyz' was not found on this machine",
        ),
        (
            "apiVersion: lrsweep.dev/v1alpha1\nkind: LRSweep\nmetadata: {name: x}\n"
            "spec: {trial: {template: {spec: {containers: [{name: a, image: b, "
            "comand: [python, train.py]}]}}}}\n",
            "containers[0].comand: not a field of a Kubernetes container (did you mean 'command'?)",
        ),
        (
            "apiVersion: lrsweep.dev/v1alpha1\nkind: LRSweep\nmetadata: {name: x}\n"
            "spec: {trial: {template: {spec: {containers: [{name: a, image: b, "
            "workingDir: /no-such-workspace}]}}}}\n",
            "workingDir: '/no-such-workspace' is not a directory on this machine",
        ),
    ],
    ids=[
        "invalid-yaml",
        "unknown-field",
        "min-above-max",
        "missing-command",
        "misspelt-command",
        "missing-working-dir",
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    done = lrsweep("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr


def test_a_file_that_is_not_text_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "report.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    done = lrsweep("run", str(path))
    assert done.returncode == 2
    assert "not a text file; give an LRSweep YAML file" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_out_directory_that_cannot_be_created_exits_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05]})
    done = lrsweep("run", str(path), "--out", str(tmp_path / "taken" / "out"))
    assert done.returncode == 2
    assert "cannot create the directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_poll_interval_that_is_not_positive_exits_2(tmp_path: Path) -> None:
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05]})
    done = lrsweep("run", str(path), "--interval", "-1")
    assert done.returncode == 2
    assert "give a positive number of seconds" in done.stderr


def test_a_signal_while_the_result_is_written_does_not_cut_it_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second Ctrl-C (or a SIGTERM) once the trials are done: result and plot still land.
    from lrsweep import plots
    from lrsweep.cli import main

    drawn = plots.plot_report

    def impatient(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        drawn(*args, **kwargs)

    monkeypatch.setattr(plots, "plot_report", impatient)
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05]})
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.png").exists()
    assert json.loads((tmp_path / "out" / "result.json").read_text())["phase"] == "Succeeded"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_multi_gpu_example_runs_two_processes_a_trial_and_finds_as_good_a_rate(
    local_quickstart: LocalRun, local_multi_gpu: LocalRun
) -> None:
    """torchrun is not on this test's PATH: it is found beside the Python running lrsweep.

    Its search is the quickstart's, but two processes sum a step's gradients in another
    order than one: a run at a rate near divergence can end elsewhere, and the sweeps then
    part ways. Whatever it picks scores within 15% of the quickstart's winner."""
    result = local_multi_gpu.result()
    assert result["phase"] == "Succeeded"
    assert result["bestScore"] <= 1.15 * local_quickstart.result()["bestScore"]
    log = (local_multi_gpu.out / "trials" / "t001-a1.log").read_text()
    assert "torch/distributed/run.py" in log  # torchrun's own warning: it started the trial


def test_an_unknown_task_exits_2_naming_the_task(tmp_path: Path) -> None:
    doc = yaml.safe_load(QUICKSTART.read_text())
    doc["spec"]["trial"]["template"]["spec"]["containers"][0]["args"] = ["--task", "imagenet"]
    path = tmp_path / "unknown-task.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 2
    assert "imagenet" in done.stderr
    # A usage error: one attempt, not maxRetries more of the same.
    assert "not retried" in done.stderr
    assert [p.name for p in (tmp_path / "trials").glob("*.log")] == ["t000-a1.log"]


def _start_run(path: Path, out: Path) -> subprocess.Popen[str]:
    """`lrsweep run` in the background, interruptible with SIGINT."""
    return start_lrsweep("run", str(path), "--out", str(out))


def test_ctrl_c_stops_every_trial_and_writes_the_partial_result(tmp_path: Path) -> None:
    env = {"TOY_BEHAVIOUR": "slow"}
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05, 0.1, 0.2]}, env=env)
    proc = _start_run(path, tmp_path)
    trials = tmp_path / "trials"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(trials.glob("*.log"))) < 2:
        time.sleep(0.1)
    time.sleep(1.0)
    children = children_running(proc, TOY)
    assert children, "trial processes should be running"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not [pid for pid in children if alive(pid)]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["message"].startswith("interrupted")
    assert result["trials"]


def _interrupt_once_a_trial_is_decided(
    path: Path, out: Path, also: Callable[[dict[str, Any]], bool] | None = None
) -> str:
    """Start `lrsweep run`, Ctrl-C it once its status on disk shows a finished trial (and,
    if `also` is given, a trial for which it holds)."""
    proc = _start_run(path, out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            trials = json.loads((out / "result.json").read_text())["trials"]
        except (OSError, ValueError, KeyError):
            trials = {}
        if any(t["phase"] == "Succeeded" for t in trials.values()) and (
            also is None or any(also(t) for t in trials.values())
        ):
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the running sweep's status never showed a finished trial")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    return stdout


def test_an_interrupted_sweep_says_how_to_resume_it_in_a_line_that_copies_whole(
    tmp_path: Path,
) -> None:
    values = [0.05, 0.1, 0.2, 0.4]
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": values}, {"TOY_BEHAVIOUR": "slow"})
    out = tmp_path / ("output-of-a-sweep-with-a-long-name-" * 3)  # wider than the terminal
    stdout = _interrupt_once_a_trial_is_decided(path, out)
    assert f"go on from here with: lrsweep run {path} --out {out} --resume" in stdout.splitlines()
    assert f"wrote {out / 'result.json'} and {out / 'report.png'}" in stdout.splitlines()


def test_a_resumed_sweep_keeps_its_decided_trials_and_finishes_the_rest(tmp_path: Path) -> None:
    values = [0.05, 0.1, 0.2, 0.4]
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": values}, {"TOY_BEHAVIOUR": "slow"})
    out = tmp_path / "out"
    _interrupt_once_a_trial_is_decided(path, out)
    before = json.loads((out / "result.json").read_text())["trials"]
    decided = {tid for tid, t in before.items() if t["phase"] == "Succeeded"}

    def files_of_decided() -> dict[str, int]:
        found = [p for tid in decided for p in (out / "trials").glob(f"{tid}-a*")]
        return {p.name: p.stat().st_mtime_ns for p in found}

    kept = files_of_decided()
    done = lrsweep("run", str(path), "--out", str(out), "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(decided)} trial(s) decided" in " ".join(done.stdout.split())
    result = json.loads((out / "result.json").read_text())
    assert result["bestLearningRate"] == 0.05
    assert all(t["phase"] == "Succeeded" for t in result["trials"].values())
    for tid in decided:
        assert result["trials"][tid] == before[tid]  # kept as they were
    assert files_of_decided() == kept  # and not trained again


def test_a_new_sweep_where_one_ran_needs_overwrite(tmp_path: Path) -> None:
    path, out = (
        str(toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05]})),
        str(tmp_path / "o"),
    )
    assert lrsweep("run", path, "--out", out).returncode == 0
    again = lrsweep("run", path, "--out", out)
    assert again.returncode == 2
    assert "holds an earlier sweep (toy: Succeeded, best rate 0.05)" in again.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["phase"] == "Succeeded"
    assert lrsweep("run", path, "--out", out, "--overwrite").returncode == 0


def test_resume_where_no_sweep_ran_exits_2_saying_to_run_without_it(tmp_path: Path) -> None:
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.1]})
    done = lrsweep("run", str(path), "--out", str(tmp_path / "empty"), "--resume")
    assert done.returncode == 2
    assert "holds no sweep of `lrsweep run`" in done.stderr
    assert "run without --resume" in done.stderr


def test_asha_stops_trials_at_their_rung_instead_of_letting_them_run_on(tmp_path: Path) -> None:
    values = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    path = toy_sweep(tmp_path, {"strategy": "asha", "values": values})
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    stopped = [t for t in result["trials"].values() if t["phase"] == "Stopped"]
    assert stopped
    for trial in stopped:
        last_rung = max(int(step) for step in trial["rungs"])
        # Paused at the rung until the decision came: no steps spent beyond it.
        assert trial["step"] == last_rung, trial


def test_with_two_seeds_each_rate_is_kept_or_cut_whole_and_scores_its_mean(
    tmp_path: Path,
) -> None:
    values = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    path = toy_sweep(tmp_path, {"strategy": "asha", "values": values, "seeds": 2})
    done = lrsweep("run", str(path), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for trial in result["trials"].values():
        by_rate.setdefault(trial["learningRate"], []).append(trial)
    assert sorted(by_rate) == values
    for rate, trials in by_rate.items():
        assert sorted(t["seed"] for t in trials) == [0, 1], rate
        phases = {t["phase"] for t in trials}
        assert not {"Succeeded", "Stopped"} <= phases, (rate, phases)
    assert any(t["phase"] == "Stopped" for t in result["trials"].values())
    best = by_rate[result["bestLearningRate"]]
    assert [t["phase"] for t in best] == ["Succeeded", "Succeeded"]
    finals = [t["rungs"]["100"] for t in best]
    assert result["bestScore"] == pytest.approx(sum(finals) / 2)


def test_a_resumed_sweeps_relaunched_trials_go_on_from_their_checkpoints(tmp_path: Path) -> None:
    values = [0.05, 0.1, 0.2, 0.4]
    env = {"TOY_BEHAVIOUR": "slow", "TOY_CHECKPOINT": "1"}
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": values}, env)
    out = tmp_path / "out"

    def midway(trial: dict[str, Any]) -> bool:
        return bool(trial["phase"] == "Running" and 20 <= trial["step"] <= 60)

    _interrupt_once_a_trial_is_decided(path, out, also=midway)
    # The trials SIGTERM stopped mid-run (one that had just finished is simply relaunched),
    # with the last evaluation each kept.
    kept: dict[str, int] = {}
    for summary in (out / "trials").glob("*-a1.summary.json"):
        first = json.loads(summary.read_text())
        last = max(first["history"]["step"])
        if first["reason"].startswith("stopped by SIGTERM") and last >= 10:
            kept[first["trial"]] = last
    assert kept, "no trial was stopped mid-run by the interrupt"
    done = lrsweep("run", str(path), "--out", str(out), "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    trials = json.loads((out / "result.json").read_text())["trials"]
    for tid, step in kept.items():
        again = json.loads((out / "trials" / f"{tid}-a2.summary.json").read_text())
        assert again["resumedFrom"] == step
        assert trials[tid]["startStep"] == step
        assert trials[tid]["phase"] == "Succeeded"
    assert json.loads((out / "result.json").read_text())["bestLearningRate"] == 0.05


def test_a_finished_sweep_leaves_no_checkpoints(tmp_path: Path) -> None:
    path = toy_sweep(tmp_path, {"strategy": "grid", "values": [0.05, 0.1]}, {"TOY_CHECKPOINT": "1"})
    done = lrsweep("run", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()
