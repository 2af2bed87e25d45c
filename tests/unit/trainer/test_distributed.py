"""A trial of several processes, seen from one rank (`lrsweep_trainer.distributed`).

Covers: ranks come from torchrun's variables, and a rank outside its world is refused; one
process joins no group; only rank 0 serves metrics, writes the summary and keeps
checkpoints; every rank runs with rank 0's settings; a divergence, the end of a range test
or a SIGTERM on another rank stops this one at the same report, with that rank's reason; a
rank that finds another checkpoint than rank 0 fails. The other ranks are played by
`ScriptedGroup` (torchrun itself: test_torchrun.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lrsweep.runtime.local import free_port
from lrsweep_trainer import report
from lrsweep_trainer.distributed import Alone, Ranks, detect_ranks, join
from lrsweep_trainer.settings import RunSettings
from tests.unit.trainer.helpers import read_summary

T = TypeVar("T")


class ScriptedGroup:
    """This rank among others whose answers the test sets: their flags (diverged, range test
    over, SIGTERM), their reasons, and what rank 0 shares, in order (then: this rank's own)."""

    def __init__(self, rank: int, world_size: int = 2, leader_shares: Sequence[Any] = ()) -> None:
        self.ranks = Ranks(rank=rank, world_size=world_size)
        self.others: tuple[bool, bool, bool] = (False, False, False)
        self.other_reasons: tuple[str | None, str | None] = (None, None)
        self.leader_shares = list(leader_shares)
        self.closed = False

    def any(self, flags: Sequence[bool]) -> tuple[bool, ...]:
        return tuple(a or b for a, b in zip(flags, self.others, strict=True))

    def gather(self, item: T) -> list[T]:
        others: Any = self.other_reasons
        return [others, item] if self.ranks.rank == 1 else [item, others]

    def share(self, item: T) -> T:
        if self.ranks.leader or not self.leader_shares:
            return item
        shared: T = self.leader_shares.pop(0)
        return shared

    def close(self) -> None:
        self.closed = True


def settings(path: Path, **fields: Any) -> RunSettings:
    return RunSettings(
        learning_rate=0.1,
        max_steps=20,
        metrics_host="127.0.0.1",
        termination_path=str(path),
        **fields,
    )


def test_ranks_come_from_torchruns_variables() -> None:
    ranks = detect_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert ranks == Ranks(rank=3, world_size=4, local_rank=1)
    assert not ranks.leader


def test_a_rank_outside_its_world_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 2 of world size 2"):
        detect_ranks({"RANK": "2", "WORLD_SIZE": "2"})


def test_a_rank_that_is_not_a_number_names_its_variable() -> None:
    with pytest.raises(ValueError, match="WORLD_SIZE: must be an integer"):
        detect_ranks({"WORLD_SIZE": "two"})


def test_one_process_joins_no_group() -> None:
    assert isinstance(join({}), Alone)
    assert isinstance(join({"RANK": "0", "WORLD_SIZE": "1"}), Alone)


def test_only_rank_zero_serves_metrics(summary_path: Path) -> None:
    served = settings(summary_path, metrics_port=free_port())
    leader = report.Session(served, group=ScriptedGroup(0), handle_sigterm=False)
    other = report.Session(served, group=ScriptedGroup(1), handle_sigterm=False)
    try:
        assert leader.metrics_port is not None
        assert other.metrics_port is None
    finally:
        leader.finish()
        other.finish()


def test_only_rank_zero_writes_the_summary(tmp_path: Path) -> None:
    for rank in (0, 1):
        path = tmp_path / f"summary-{rank}.json"
        with report.Session(settings(path), group=ScriptedGroup(rank), handle_sigterm=False):
            pass
        assert path.exists() == (rank == 0)


def test_finishing_releases_the_group(summary_path: Path) -> None:
    group = ScriptedGroup(1)
    with report.Session(settings(summary_path), group=group, handle_sigterm=False):
        pass
    assert group.closed


def test_every_rank_runs_with_rank_zeros_settings(summary_path: Path) -> None:
    leaders = settings(summary_path, seed=7)
    group = ScriptedGroup(1, leader_shares=[leaders])
    with report.Session(settings(summary_path, seed=3), group=group) as session:
        assert session.seed == 7


def test_a_divergence_on_another_rank_stops_this_one_with_its_reason(
    summary_path: Path,
) -> None:
    group = ScriptedGroup(0)
    with report.Session(settings(summary_path), group=group, handle_sigterm=False) as session:
        assert not session.log(1, train_loss=1.0)
        group.others = (True, False, False)
        group.other_reasons = ("training loss became nan at step 2", None)
        assert session.log(2, train_loss=0.9)
        assert session.diverged
    summary = read_summary(summary_path)
    assert summary["status"] == "diverged"
    assert summary["reason"] == "rank 1: training loss became nan at step 2"


def test_the_end_of_a_range_test_on_another_rank_ends_it_here(summary_path: Path) -> None:
    group = ScriptedGroup(1)
    range_test = settings(summary_path, mode="range-test")
    with report.Session(range_test, group=group, handle_sigterm=False) as session:
        assert not session.log_step(1, 2.0)
        group.others = (False, True, False)
        group.other_reasons = (None, "range test stopped at step 2")
        assert session.log_step(2, 1.9)
        assert session.should_stop


def test_a_sigterm_on_another_rank_stops_this_one(summary_path: Path) -> None:
    group = ScriptedGroup(0)
    with report.Session(settings(summary_path), group=group, handle_sigterm=False) as session:
        assert not session.log_step(1, 1.0)
        group.others = (False, False, True)
        assert session.log_step(2, 0.9)
    assert "stopped by SIGTERM at step 2" in summary_path.read_text()


def test_only_rank_zero_keeps_checkpoints(tmp_path: Path) -> None:
    for rank in (0, 1):
        directory = tmp_path / f"rank{rank}"
        kept = settings(tmp_path / f"summary-{rank}.json", checkpoint_dir=str(directory))
        with report.Session(kept, group=ScriptedGroup(rank), handle_sigterm=False) as session:
            assert session.resume(lambda: {"weights": [1.0]}) is None
            session.log(5, train_loss=1.0)
            assert (directory / report.CHECKPOINT_FILE).exists() == (rank == 0)
            session.finish("failed", "the test ends it before its budget")


def test_a_rank_that_finds_another_checkpoint_than_rank_zero_fails(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    kept = settings(tmp_path / "summary.json", checkpoint_dir=str(directory))
    with report.Session(kept, group=ScriptedGroup(0), handle_sigterm=False) as session:
        session.resume(lambda: {"weights": [1.0]})
        session.log(5, train_loss=1.0)
        session.finish("failed", "ended early, its checkpoint kept")
    assert (directory / report.CHECKPOINT_FILE).exists()
    # Rank 0 shares its settings, then "no checkpoint"; this rank found the one at step 5.
    group = ScriptedGroup(1, leader_shares=[kept, None])
    with (
        report.Session(kept, group=group, handle_sigterm=False) as session,
        pytest.raises(RuntimeError, match="another checkpoint than rank 0"),
    ):
        session.resume(lambda: {"weights": [1.0]})
