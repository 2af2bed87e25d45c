"""The reporting API for users' own scripts (`lrsweep_trainer.report`).

Covers: start() reads the environment, with its keyword arguments as fallbacks that the
environment overrides; a missing rate is a clear error; bad variables name themselves;
lr_at follows the schedule, or grows exponentially from range start to end in range-test
mode; should_evaluate; log/log_step return True on NaN or a blow-up and the summary says
diverged; metrics at one step merge and user metric names reach the summary; the context
manager writes a failed summary on an exception and re-raises it; SIGTERM turns into a stop
with a finished summary, and the previous handler comes back; settings no run could follow
are refused.
"""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest

from lrsweep_trainer import report
from lrsweep_trainer.schedules import Schedule
from lrsweep_trainer.settings import RunSettings
from tests.unit.trainer.helpers import read_summary


def env(path: Path, **variables: str) -> dict[str, str]:
    return {"LRSWEEP_TERMINATION_PATH": str(path), **variables}


def test_start_reads_the_environment(summary_path: Path) -> None:
    variables = env(
        summary_path,
        LRSWEEP_LEARNING_RATE="0.02",
        LRSWEEP_MAX_STEPS="400",
        LRSWEEP_EVAL_EVERY="50",
        LRSWEEP_SEED="9",
        LRSWEEP_TRIAL="t002",
        LRSWEEP_RUNGS="100, 300",
        LRSWEEP_CHECKPOINT_EVERY="200",
    )
    with report.start(env=variables, handle_sigterm=False) as session:
        assert (session.learning_rate, session.max_steps, session.seed) == (0.02, 400, 9)
        assert session.settings.eval_every == 50
        assert session.settings.checkpoint_every == 200
        assert session.settings.rungs == (100, 300)
        assert session.settings.trial == "t002"


def test_keyword_arguments_are_fallbacks_the_environment_overrides(summary_path: Path) -> None:
    variables = env(summary_path, LRSWEEP_LEARNING_RATE="0.02")
    with report.start(
        learning_rate=0.5, max_steps=100, env=variables, handle_sigterm=False
    ) as session:
        assert (session.learning_rate, session.max_steps) == (0.02, 100)


def test_missing_rate_is_a_clear_error(summary_path: Path) -> None:
    with pytest.raises(ValueError, match="LRSWEEP_LEARNING_RATE"):
        report.start(env=env(summary_path), handle_sigterm=False)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LRSWEEP_MAX_STEPS", "ten"),
        ("LRSWEEP_CHECKPOINT_EVERY", "0"),
        ("LRSWEEP_FINAL_ATTEMPT", "maybe"),
    ],
)
def test_bad_variable_names_itself(summary_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        report.start(
            learning_rate=0.1, env=env(summary_path, **{variable: value}), handle_sigterm=False
        )


def test_lr_at_follows_the_schedule(summary_path: Path) -> None:
    schedule = Schedule("cosine", total_steps=10, warmup_steps=2)
    with report.start(
        learning_rate=0.4, max_steps=10, schedule=schedule, env=env(summary_path),
        handle_sigterm=False,
    ) as session:  # fmt: skip
        assert [session.lr_at(s) for s in (1, 2, 3)] == pytest.approx([0.2, 0.4, 0.4])


def test_range_test_rate_grows_exponentially_from_start_to_end(summary_path: Path) -> None:
    variables = env(
        summary_path,
        LRSWEEP_MODE="range-test",
        LRSWEEP_MAX_STEPS="5",
        LRSWEEP_RANGE_START="1e-4",
        LRSWEEP_RANGE_END="1",
    )
    with report.start(env=variables, handle_sigterm=False) as session:
        rates = [session.lr_at(s) for s in range(1, 6)]
    assert rates == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_should_evaluate_every_eval_every_steps_and_at_the_last(summary_path: Path) -> None:
    with report.start(
        learning_rate=0.1, max_steps=25, eval_every=10, env=env(summary_path), handle_sigterm=False
    ) as session:
        assert [s for s in range(1, 26) if session.should_evaluate(s)] == [10, 20, 25]


def test_nan_loss_stops_the_run_as_diverged(summary_path: Path) -> None:
    with report.start(learning_rate=0.1, env=env(summary_path), handle_sigterm=False) as session:
        assert session.log(10, train_loss=2.0, val_loss=2.1) is False
        assert session.log(20, train_loss=math.nan, val_loss=2.1) is True
    summary = read_summary(summary_path)
    assert summary["status"] == "diverged"
    assert summary["reason"] == "training loss became nan at step 20"
    assert summary["history"]["train_loss"] == [2.0, "NaN"]


def test_blow_up_over_the_divergence_factor_stops_the_run(summary_path: Path) -> None:
    with report.start(learning_rate=0.1, env=env(summary_path), handle_sigterm=False) as session:
        assert session.log_step(1, 2.0) is False
        assert session.log_step(2, 7.9) is False
        assert session.log_step(3, 8.1) is True
    reason = read_summary(summary_path)["reason"]
    assert reason == "training loss 8.1 at step 3 exceeds 4 x the initial loss 2"


def test_metrics_at_one_step_merge_and_user_metrics_reach_the_summary(
    summary_path: Path,
) -> None:
    with report.start(learning_rate=0.1, env=env(summary_path), handle_sigterm=False) as session:
        session.log(5, train_loss=1.0)
        session.log(5, val_loss=1.5, perplexity=4.5)
    history = read_summary(summary_path)["history"]
    assert history == {"step": [5], "train_loss": [1.0], "val_loss": [1.5], "perplexity": [4.5]}


def test_exception_in_the_block_writes_a_failed_summary_and_propagates(
    summary_path: Path,
) -> None:
    def script() -> None:
        with report.start(learning_rate=0.1, env=env(summary_path), handle_sigterm=False) as s:
            s.log(3, train_loss=1.0)
            raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        script()
    summary = read_summary(summary_path)
    assert summary["status"] == "failed"
    assert summary["reason"] == "ZeroDivisionError at step 3: division by zero"


def test_sigterm_asks_the_run_to_stop_and_the_old_handler_returns(summary_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with report.start(learning_rate=0.1, max_steps=100, env=env(summary_path)) as session:
        assert signal.getsignal(signal.SIGTERM) != before
        session.log_step(1, 2.0)
        signal.raise_signal(signal.SIGTERM)
        assert session.should_stop
        assert session.log_step(2, 1.9) is True
    assert signal.getsignal(signal.SIGTERM) == before
    summary = read_summary(summary_path)
    assert (summary["status"], summary["reason"]) == ("finished", "stopped by SIGTERM at step 2")


def test_finish_is_idempotent(summary_path: Path) -> None:
    session = report.start(learning_rate=0.1, env=env(summary_path), handle_sigterm=False)
    first = session.finish()
    assert session.finish("failed", "again") == first


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"learning_rate": 0.0}, "learning rate"),
        ({"max_steps": 0}, "step budget"),
        ({"eval_every": 0}, "eval_every"),
        ({"divergence_factor": 1.0}, "divergence factor"),
        ({"mode": "range-test"}, "range test needs a number of steps"),
        ({"mode": "range-test", "max_steps": 9, "range_end": 1e-6}, "range must grow"),
    ],
)
def test_settings_refuse_what_no_run_could_follow(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunSettings(**{"learning_rate": 0.1, **fields})
