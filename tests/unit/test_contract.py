"""The trainer <-> operator contract (`lrsweep.contract`) holds both sides to one set of names.

Covers: every variable the operator sets for a trial is a contract variable, and the
trainer reads each back as the value the operator meant; docs/contract.md's environment
table lists exactly the contract's variables; the series the trainer serves are the ones
the operator parses (at the history path: the bounded series and the evaluations), under the
contract's prefix; the statuses a summary may give are the outcomes the engine knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from lrsweep import contract
from lrsweep.engine.sweep import Launch
from lrsweep.engine.trials import Outcome
from lrsweep.runtime.env import contract_env
from lrsweep.runtime.metrics import parse_metrics
from lrsweep_trainer.metrics import MetricsExporter
from lrsweep_trainer.settings import RunSettings
from lrsweep_trainer.summary import Status

ROOT = Path(__file__).resolve().parents[2]
TRAINING = Launch("t003", 2, 0.03, 5, "train", 300, 25, (25, 75), gated=True,
                  objective="val_loss", final=True)  # fmt: skip
RANGE_TEST = Launch("t000", 1, 1e-5, 0, "range-test", 100, 10, (), range_start=1e-5,
                    range_end=3.0)  # fmt: skip


def everything(launch: Launch) -> dict[str, str]:
    return contract_env(
        launch,
        sweep="s",
        metrics_port=9090,
        termination_path="/tmp/summary",
        metrics_host="10.0.0.7",
        gate_timeout=600,
        checkpoint_dir="/ckpt/t003",
        checkpoint_every=50,
    )


def test_every_variable_the_operator_sets_is_a_contract_variable() -> None:
    for launch in (TRAINING, RANGE_TEST):
        assert set(everything(launch)) <= set(contract.VARIABLES)


def test_the_trainer_reads_back_what_the_operator_meant() -> None:
    training = RunSettings.from_env(everything(TRAINING))
    assert (training.learning_rate, training.seed, training.max_steps) == (0.03, 5, 300)
    assert (training.eval_every, training.rungs, training.objective) == (25, (25, 75), "val_loss")
    assert (training.metrics_port, training.metrics_host) == (9090, "10.0.0.7")
    assert (training.gate_timeout, training.checkpoint_every) == (600, 50)
    assert (training.checkpoint_dir, training.final_attempt) == ("/ckpt/t003", True)
    assert (training.sweep, training.trial, training.termination_path) == (
        "s",
        "t003",
        "/tmp/summary",
    )
    range_test = RunSettings.from_env(everything(RANGE_TEST))
    assert (range_test.mode, range_test.range_start, range_test.range_end) == (
        "range-test", 1e-5, 3.0,
    )  # fmt: skip


def test_the_contract_doc_lists_exactly_the_contract_variables() -> None:
    text = (ROOT / "docs" / "contract.md").read_text()
    table = text[text.index("## Environment") :].split("\n## ")[0]
    listed = {
        name for row in table.splitlines() if row.startswith("| `LRSWEEP_")
        for name in re.findall(r"`(LRSWEEP_\w+)`", row.split("|")[1])
    }  # fmt: skip
    assert listed == set(contract.VARIABLES) - {contract.DIVERGENCE_FACTOR}


def test_the_series_the_trainer_serves_are_the_ones_the_operator_parses() -> None:
    exporter = MetricsExporter("s", "t003")
    exporter.set_step(25, 0.03)
    exporter.record_evaluation(25, {"train_loss": 0.5, "val_loss": 0.6})
    text = exporter.exposition(contract.HISTORY_PATH).decode()
    assert all(line.startswith(("#", contract.SERIES_PREFIX)) for line in text.splitlines() if line)
    reading = parse_metrics(text, {"sweep": "s", "trial": "t003"})
    assert reading.step == 25
    assert [(p.step, dict(p.metrics)) for p in reading.points] == [
        (25, {"train_loss": 0.5, "val_loss": 0.6})
    ]


def test_a_summarys_statuses_are_the_outcomes_the_engine_knows() -> None:
    assert set(get_args(Status)) == {outcome.value for outcome in Outcome}
