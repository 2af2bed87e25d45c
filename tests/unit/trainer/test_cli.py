"""`python -m lrsweep_trainer`: flags, environment, exit codes, signals.

Covers: --help lists the tasks; every flag defaults from its LRSWEEP_* variable and an
explicit flag wins; bad flags, bad variables and unknown tasks exit 2 with a failed summary;
the objective from LRSWEEP_OBJECTIVE keeps a rung without it from pausing; a crash exits
non-zero with a failed summary, and deletes its checkpoint on a final attempt only; an
unwritable summary path costs one stderr line, not the run; a range test prints its
suggestions; as a process: a diverged run exits 0, and SIGTERM stops the run at the next
step with a summary and exit 0; every setting has a flag, and the trainer's own have their
variables in docs/contract.md.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path

import pytest
import torch

import lrsweep_trainer.cli
from lrsweep.runtime.local import free_port
from lrsweep_trainer import report
from lrsweep_trainer.cli import HELP, SWITCHES, TrainerOptions, main
from lrsweep_trainer.settings import RunSettings, Settings
from tests.unit.trainer.helpers import (
    read_summary,
    run_trainer,
    subprocess_env,
    trainer_command,
)

QUICK = ["--task", "regression", "--steps", "5", "--eval-every", "5"]


def test_help_lists_the_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("digits-mlp", "digits-cnn", "regression", "char-lm"):
        assert name in out


def test_flags_default_from_the_environment(
    summary_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSWEEP_LEARNING_RATE", "0.0125")
    monkeypatch.setenv("LRSWEEP_MAX_STEPS", "6")
    monkeypatch.setenv("LRSWEEP_EVAL_EVERY", "3")
    monkeypatch.setenv("LRSWEEP_TRIAL", "t007")
    monkeypatch.setenv("LRSWEEP_TASK", "regression")
    monkeypatch.setenv("LRSWEEP_TERMINATION_PATH", str(summary_path))
    assert main([]) == 0
    summary = read_summary(summary_path)
    assert (summary["trial"], summary["learningRate"], summary["step"]) == ("t007", 0.0125, 6)
    assert summary["history"]["step"] == [0, 3, 6]


def test_an_explicit_flag_wins_over_the_environment(
    summary_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSWEEP_LEARNING_RATE", "0.0125")
    assert main([*QUICK, "--lr", "0.03", "--termination-path", str(summary_path)]) == 0
    assert read_summary(summary_path)["learningRate"] == 0.03


@pytest.mark.parametrize(
    ("argv", "variables", "message"),
    [
        (["--lr", "fast"], {}, "--lr: could not convert"),
        (["--lr", "-1"], {}, "positive"),
        (["--steps", "0"], {}, "positive integer"),
        ([], {"LRSWEEP_MAX_STEPS": "many"}, "LRSWEEP_MAX_STEPS: invalid literal"),
        ([], {"LRSWEEP_MODE": "sprint"}, "train, range-test"),
        (["--task", "imagenet"], {}, "known tasks: digits-mlp"),
        (["--range-test", "--range-start", "1", "--range-end", "0.1"], {}, "range must grow"),
        (["--optimizer", "adam", "--nesterov"], {}, "nesterov"),
        ([], {"LRSWEEP_FINAL_ATTEMPT": "maybe"}, "LRSWEEP_FINAL_ATTEMPT"),
    ],
)
def test_bad_arguments_exit_2_with_a_failed_summary(
    argv: list[str],
    variables: dict[str, str],
    message: str,
    summary_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LRSWEEP_TERMINATION_PATH", str(summary_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    summary = read_summary(summary_path)
    assert summary["status"] == "failed"
    assert message in summary["reason"]


@pytest.mark.parametrize(
    ("flag", "kept"), [("--final-attempt", False), ("--no-final-attempt", True)]
)
def test_a_failed_final_attempt_of_the_built_in_trainer_deletes_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str, kept: bool
) -> None:
    def breaks_after_a_checkpoint(config: object, session: report.Session) -> None:
        session.resume(lambda: {"weights": torch.zeros(2)})
        session.log(5, val_loss=1.0)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(lrsweep_trainer.cli, "train", breaks_after_a_checkpoint)
    checkpoints = tmp_path / "ckpt"
    argv = ["--lr", "0.1", "--steps", "10", "--checkpoint-dir", str(checkpoints), flag]
    assert main([*argv, "--termination-path", str(tmp_path / "s.json")]) != 0
    assert (checkpoints / report.CHECKPOINT_FILE).exists() is kept


def test_the_sweeps_objective_reaches_the_rung_gate(
    summary_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo in objective.metric: the built-in trainer must not wait out the gate at rung 5.
    monkeypatch.setenv("LRSWEEP_OBJECTIVE", "acc")
    gate = ["--rungs", "5", "--gate-timeout", "600", "--metrics-host", "127.0.0.1"]
    argv = [*QUICK, "--steps", "10", *gate, "--metrics-port", str(free_port())]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--termination-path", str(summary_path)]) == 0
    assert "rung 5: the sweep compares 'acc', not in this report" in caplog.text


def test_a_crash_exits_nonzero_with_a_failed_summary(
    summary_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main([*QUICK, "--device", "cuda", "--termination-path", str(summary_path)])
    assert code != 0
    summary = read_summary(summary_path)
    assert summary["status"] == "failed"
    assert "CUDA is not available" in summary["reason"]


def test_unwritable_summary_path_logs_one_line_and_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder" / "summary.json"
    assert main([*QUICK, "--termination-path", str(missing)]) == 0
    complaints = [
        line for line in capsys.readouterr().err.splitlines() if "could not write" in line
    ]
    assert len(complaints) == 1


def test_range_test_prints_its_suggestions(
    summary_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--task", "regression", "--range-test", "--steps", "60", "--range-start", "1e-3"]
    assert main([*argv, "--termination-path", str(summary_path)]) == 0
    out = capsys.readouterr().out
    assert "steepest descent" in out
    assert "valley" in out
    assert "rangeTest" in read_summary(summary_path)


def test_diverged_process_exits_0(summary_path: Path) -> None:
    result = run_trainer(
        "--task", "regression", "--lr", "50", "--steps", "200",
        env={"LRSWEEP_TERMINATION_PATH": str(summary_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = read_summary(summary_path)
    assert summary["status"] == "diverged"
    assert summary["step"] < 200


def test_sigterm_stops_at_the_next_step_writes_the_summary_and_exits_0(
    summary_path: Path,
) -> None:
    with subprocess.Popen(
        trainer_command("--task", "regression", "--steps", "1000000", "--eval-every", "20"),
        env=subprocess_env(LRSWEEP_TERMINATION_PATH=str(summary_path)),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:  # wait until it is training
            if " step 20/" in line:
                break
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0
    summary = read_summary(summary_path)
    assert summary["status"] == "finished"
    assert "SIGTERM" in summary["reason"]
    assert 20 <= summary["step"] < 1_000_000
    assert summary["history"]["step"][-1] == summary["step"]


def test_every_setting_has_a_flag_and_a_variable_in_the_contract_doc() -> None:
    fields = {*RunSettings.model_fields, *TrainerOptions.model_fields}
    assert fields == {*HELP, *SWITCHES}
    doc = (Path(__file__).resolve().parents[3] / "docs" / "contract.md").read_text()
    assert [f for f in TrainerOptions.model_fields if Settings.variable(f) not in doc] == []
