"""Parsing what trainers report: Prometheus text and the exit summary.

Covers: the evaluation history becomes points per step; range-test samples become a curve;
NaN survives; garbage raises MetricsError (never anything else), and so do the metrics of
another sweep or trial than the one expected (labels absent are not checked); summaries with
non-finite strings, range tests (points without range values skipped), and malformed
content; what an ended attempt's exit code and summary add up to (the same rule for pods and
local processes: a failed summary's reason says why, and exit code 2 is a usage error that no
new attempt can mend).
"""

from __future__ import annotations

import json
import math

import pytest

from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.metrics import (
    MetricsError,
    exit_observation,
    parse_metrics,
    parse_summary,
    running_observation,
)

TEXT = """\
# HELP lrsweep_trial_step Last completed step
# TYPE lrsweep_trial_step gauge
lrsweep_trial_step{sweep="s",trial="t000"} 50.0
# TYPE lrsweep_trial_eval gauge
lrsweep_trial_eval{sweep="s",trial="t000",metric="val_loss",step="25"} 1.5
lrsweep_trial_eval{sweep="s",trial="t000",metric="train_loss",step="25"} 1.4
lrsweep_trial_eval{sweep="s",trial="t000",metric="val_loss",step="50"} NaN
# TYPE lrsweep_trial_diverged gauge
lrsweep_trial_diverged{sweep="s",trial="t000"} 1.0
"""


def test_history_samples_become_points_in_step_order() -> None:
    reading = parse_metrics(TEXT)
    assert reading.step == 50
    assert [p.step for p in reading.points] == [25, 50]
    assert reading.points[0].metrics == {"val_loss": 1.5, "train_loss": 1.4}
    assert math.isnan(reading.points[1].metrics["val_loss"])
    assert reading.diverged


def test_range_test_samples_become_a_curve() -> None:
    text = "\n".join(
        f'lrsweep_trial_eval{{metric="{m}",step="{s}"}} {v}'
        for s in (1, 2)
        for m, v in (("learning_rate", 0.001 * s), ("smoothed_loss", 2.0 / s))
    )
    reading = parse_metrics(text + "\n")
    assert reading.range_curve == ((0.001, 2.0), (0.002, 1.0))
    assert reading.points == ()


def test_the_step_an_attempt_went_on_from_is_read_from_its_metrics() -> None:
    text = TEXT + 'lrsweep_trial_resumed_from_step{sweep="s",trial="t000"} 40.0\n'
    assert parse_metrics(text).resumed_from == 40
    assert parse_metrics(TEXT).resumed_from == 0


def test_a_running_attempts_observation_says_where_it_went_on_from() -> None:
    text = TEXT + 'lrsweep_trial_resumed_from_step{sweep="s",trial="t000"} 40.0\n'
    observation = running_observation("t000", 2, parse_metrics(text))
    assert (observation.step, observation.resumed_from) == (50, 40)
    assert running_observation("t000", 2, None).state is ProcessState.RUNNING


@pytest.mark.parametrize("value", [30, "30", -1, 2.5, None, True])
def test_the_step_an_attempt_went_on_from_is_read_from_its_summary(value: object) -> None:
    summary = {"v": 1, "status": "finished", "step": 60, "resumedFrom": value}
    reading = parse_summary(json.dumps(summary))
    assert reading.resumed_from == (30 if value == 30 else 0)
    ended = exit_observation("t000", 2, 0, reading, detail="", missing="")
    assert ended.resumed_from == reading.resumed_from


def test_garbage_raises_metrics_error() -> None:
    with pytest.raises(MetricsError):
        parse_metrics("<html>this is not prometheus</html>\n")


def test_the_metrics_of_the_trial_expected_are_read() -> None:
    assert parse_metrics(TEXT, {"sweep": "s", "trial": "t000"}).step == 50


@pytest.mark.parametrize(
    "serving", [{"sweep": "s", "trial": "t001"}, {"sweep": "other", "trial": "t000"}]
)
def test_the_metrics_of_another_trial_are_refused(serving: dict[str, str]) -> None:
    with pytest.raises(MetricsError, match="the endpoint serves sweep 's', trial 't000', not"):
        parse_metrics(TEXT, serving)


def test_metrics_without_the_labels_are_not_checked_for_them() -> None:
    text = "lrsweep_trial_step 20.0\n"
    assert parse_metrics(text, {"sweep": "s", "trial": "t001"}).step == 20


def test_history_without_a_step_label_is_garbage() -> None:
    with pytest.raises(MetricsError):
        parse_metrics('lrsweep_trial_eval{metric="val_loss"} 1.0\n')


def test_summary_with_non_finite_strings_and_outcome() -> None:
    summary = {
        "v": 1,
        "status": "diverged",
        "reason": "loss was NaN at step 40",
        "step": 40,
        "history": {"step": [20, 40], "val_loss": [1.0, "NaN"], "train_loss": [0.9, "Infinity"]},
    }
    reading = parse_summary(json.dumps(summary))
    assert reading.outcome is Outcome.DIVERGED
    assert reading.step == 40
    assert math.isinf(reading.points[1].metrics["train_loss"])


def test_summary_range_test_block_becomes_a_curve() -> None:
    summary = {
        "status": "finished",
        "rangeTest": {"learning_rate": [0.1, 1.0], "smoothed_loss": [2.0, 9.0]},
    }
    assert parse_summary(json.dumps(summary)).range_curve == ((0.1, 2.0), (1.0, 9.0))


def test_summary_range_test_points_without_range_values_are_skipped() -> None:
    summary = {
        "status": "finished",
        "history": {"step": [0, 1, 2], "val_loss": [2.6, None, None]},
        "rangeTest": {"learning_rate": [None, 0.1, 1.0], "smoothed_loss": [None, 2.0, 9.0]},
    }
    assert parse_summary(json.dumps(summary)).range_curve == ((0.1, 2.0), (1.0, 9.0))


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"status": "great"}',
        '{"status": "finished", "history": {"step": [1], "val_loss": [1, 2]}}',
        "not json",
    ],
)
def test_malformed_summaries_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the message varies by defect
        parse_summary(text)


def _summary(status: str) -> str:
    return json.dumps(
        {
            "status": status,
            "step": 40,
            "reason": status,
            "history": {"step": [40], "val_loss": [2.0]},
        }
    )


def test_an_exit_with_a_summary_reports_the_summarys_outcome() -> None:
    obs = exit_observation(
        "t001", 1, 0, parse_summary(_summary("finished")), detail="", missing="none"
    )
    assert obs.state is ProcessState.EXITED
    assert obs.outcome is Outcome.FINISHED
    assert obs.step == 40


def test_a_non_zero_exit_after_diverging_is_a_divergence_not_a_failure() -> None:
    obs = exit_observation(
        "t001", 1, 1, parse_summary(_summary("diverged")), detail="boom", missing="none"
    )
    assert obs.outcome is Outcome.DIVERGED


def test_a_non_zero_exit_fails_naming_the_code_and_keeps_the_points() -> None:
    obs = exit_observation(
        "t001", 1, 3, parse_summary(_summary("finished")), detail="boom", missing="none"
    )
    assert obs.outcome is Outcome.FAILED
    assert obs.reason == "exit code 3: boom"
    assert [p.step for p in obs.points] == [40]


def test_a_failed_summarys_reason_says_why_a_non_zero_exit_failed() -> None:
    summary = {
        "status": "failed",
        "step": 0,
        "reason": "RuntimeError at step 0: --device cuda was asked for, but CUDA is not available",
    }
    obs = exit_observation(
        "t001", 1, 1, parse_summary(json.dumps(summary)), detail="Traceback...", missing="none"
    )
    assert obs.outcome is Outcome.FAILED
    assert obs.reason == (
        "exit code 1: RuntimeError at step 0: --device cuda was asked for, but CUDA is not "
        "available"
    )


@pytest.mark.parametrize(("code", "permanent"), [(2, True), (1, False), (137, False)])
def test_only_exit_code_2_is_a_usage_error_that_no_retry_can_mend(
    code: int, permanent: bool
) -> None:
    summary = parse_summary(_summary("failed"))
    obs = exit_observation("t001", 1, code, summary, detail="bad arguments", missing="none")
    assert obs.outcome is Outcome.FAILED
    assert obs.permanent is permanent


def test_a_clean_exit_without_a_summary_fails_for_the_reason_given() -> None:
    obs = exit_observation("t001", 1, 0, None, detail="", missing="no summary written")
    assert obs.outcome is Outcome.FAILED
    assert obs.reason == "no summary written"
