"""The rung gate (docs/contract.md, "Rung gate").

Covers: a trial pauses after its evaluation at a rung until the sweep's POST /continue;
a go-ahead for a later rung also releases an earlier one; the pause ends by itself after the
timeout, with a warning; SIGTERM ends the pause; no pause without a timeout, at the last
step, away from rungs, or where the evaluation lacks the objective the sweep compares there
(a pause with it as usual, also when a step is reported in two calls), nor without an
endpoint to hear a go-ahead on (none asked for, or its port taken); the endpoint refuses a
go-ahead without a step.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lrsweep_trainer import report
from tests.unit.trainer.helpers import gated_session


def go_ahead(session: report.Session, step: int, after: threading.Event) -> threading.Thread:
    def send() -> None:
        after.wait(10)
        request = urllib.request.Request(
            f"http://127.0.0.1:{session.metrics_port}/continue?step={step}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_trial_pauses_at_a_rung_until_the_go_ahead(summary_path: Path) -> None:
    with gated_session(summary_path) as session:
        sent = threading.Event()
        thread = go_ahead(session, 10, sent)
        timer = threading.Timer(0.2, sent.set)
        timer.start()
        assert session.log(10, val_loss=1.0) is False
        assert sent.is_set(), "log() returned before the go-ahead was sent"
        thread.join()


def test_a_go_ahead_for_a_later_rung_releases_an_earlier_one(summary_path: Path) -> None:
    with gated_session(summary_path) as session:
        sent = threading.Event()
        sent.set()
        go_ahead(session, 20, sent).join()
        session.log(10, val_loss=1.0)
        session.log(20, val_loss=0.9)


def test_the_pause_ends_by_itself_after_the_timeout(
    summary_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), gated_session(summary_path, "0.2") as session:
        assert session.log(10, val_loss=1.0) is False
    assert "no decision at rung 10 within 0.2s; going on" in caplog.text


def test_sigterm_ends_the_pause(summary_path: Path) -> None:
    with gated_session(summary_path) as session:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        assert session.log(10, val_loss=1.0) is True
        timer.join()


def test_no_pause_at_the_last_step_or_off_the_rungs(summary_path: Path) -> None:
    with gated_session(summary_path) as session:
        session.log(5, val_loss=1.0)
        session.log(30, val_loss=0.5)


def test_a_rung_reported_in_two_calls_pauses_at_the_one_with_the_objective(
    summary_path: Path,
) -> None:
    with gated_session(summary_path, objective="val_loss") as session:
        sent = threading.Event()
        thread = go_ahead(session, 10, sent)
        session.log(10, train_loss=1.2)
        assert not sent.is_set(), "paused before the objective was reported"
        timer = threading.Timer(0.2, sent.set)
        timer.start()
        session.log(10, val_loss=1.0)
        assert sent.is_set(), "log() returned before the go-ahead was sent"
        thread.join()


def test_no_pause_at_a_rung_whose_evaluation_lacks_the_objective(
    summary_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No decision can come (the sweep needs the objective here): going on lets the sweep
    # see the next evaluation and fail naming what was reported, instead of waiting.
    with caplog.at_level(logging.WARNING), gated_session(summary_path, "5", "acc") as session:
        assert session.log(10, val_loss=1.0) is False
    assert "rung 10: the sweep compares 'acc', not in this report" in caplog.text
    assert "no decision at rung" not in caplog.text


def test_no_pause_without_a_timeout(summary_path: Path) -> None:
    with gated_session(summary_path, "0") as session:
        session.log(10, val_loss=1.0)


def test_no_pause_without_an_endpoint(summary_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), gated_session(summary_path, "0.2", port=0) as session:
        assert session.log(10, val_loss=1.0) is False
    assert "no decision at rung" not in caplog.text


def test_no_pause_when_the_endpoint_could_not_be_served(
    summary_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            caplog.at_level(logging.WARNING),
            gated_session(summary_path, "0.2", port=port) as session,
        ):
            assert session.log(10, val_loss=1.0) is False
    assert "does not pause at rungs" in caplog.text
    assert "no decision at rung" not in caplog.text


def test_a_go_ahead_without_a_step_is_refused(summary_path: Path) -> None:
    with gated_session(summary_path) as session:
        request = urllib.request.Request(
            f"http://127.0.0.1:{session.metrics_port}/continue", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 400
        info.value.close()
