"""One trial, several processes: torchrun, DDP or FSDP speak to the sweep with one voice.

Under torchrun every process of a trial runs the same script and calls `report.start`. The
session then joins a `Group` of them: rank 0 serves the metrics, keeps the checkpoint and
writes the summary; every rank learns the same answer from `log` and `log_step` (a
divergence, the end of a range test or a SIGTERM seen by any rank stops them all at the same
step), and waits together at a rung while rank 0 waits for the sweep's go-ahead.

The group's collectives run on a gloo process group of their own (CPU tensors, whatever
backend the script trains with), created with a timeout longer than any rung pause, so a
rank waiting for rank 0 at a rung does not time out. A rank that dies makes the others'
next collective fail, and torchrun ends the rest: the attempt fails and is retried, it
never hangs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

logger = logging.getLogger("lrsweep_trainer")

T = TypeVar("T")

# torchrun's variables (torch.distributed.run): this process's place in the trial.
RANK = "RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_RANK = "LOCAL_RANK"
# Beyond the longest rung pause, how long a rank waits for the others in a collective.
COLLECTIVE_MARGIN_SECONDS = 600.0


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in its trial's process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"rank {self.rank} of world size {self.world_size}: a rank counts from 0 and "
                "stays below the world size"
            )
        if self.local_rank < 0:
            raise ValueError(f"the local rank must be >= 0, got {self.local_rank}")

    @property
    def leader(self) -> bool:
        """Rank 0: the process that speaks for the trial."""
        return self.rank == 0


def _torch_distributed() -> Any | None:
    """torch.distributed, where this process has already imported it (never imports torch)."""
    module = sys.modules.get("torch.distributed")
    if module is None or not module.is_available():
        return None
    return module


def detect_ranks(env: Mapping[str, str]) -> Ranks:
    """This process's ranks: an initialized torch.distributed's, else torchrun's variables,
    else one process alone."""
    dist = _torch_distributed()
    if dist is not None and dist.is_initialized():
        return Ranks(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_read_int(env, LOCAL_RANK, 0),
        )
    return Ranks(
        rank=_read_int(env, RANK, 0),
        world_size=_read_int(env, WORLD_SIZE, 1),
        local_rank=_read_int(env, LOCAL_RANK, 0),
    )


def _read_int(env: Mapping[str, str], name: str, fallback: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return fallback
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name}: must be an integer, got {text!r}") from None


class Group(Protocol):
    """The processes of one trial, as the session needs them."""

    @property
    def ranks(self) -> Ranks: ...

    def any(self, flags: Sequence[bool]) -> tuple[bool, ...]:
        """Per flag: whether it is set on any rank. Every rank calls it, with as many flags."""
        ...

    def gather(self, item: T) -> list[T]:
        """Every rank's `item`, in rank order, on every rank."""
        ...

    def share(self, item: T) -> T:
        """Rank 0's `item`, on every rank."""
        ...

    def close(self) -> None:
        """Release what joining took (local: no other rank takes part)."""
        ...


class Alone:
    """A trial of one process: every answer is its own."""

    ranks = Ranks()

    def any(self, flags: Sequence[bool]) -> tuple[bool, ...]:
        return tuple(flags)

    def gather(self, item: T) -> list[T]:
        return [item]

    def share(self, item: T) -> T:
        return item

    def close(self) -> None:
        return None


class TorchGroup:
    """The ranks of a torchrun trial, through a gloo process group of the session's own.

    Joins torch.distributed first where the script has not (gloo, from torchrun's
    variables): a script written for one process then runs unchanged under torchrun. A
    script that trains with DDP initializes its own process group before `report.start`.
    """

    def __init__(self, ranks: Ranks, timeout_seconds: float) -> None:
        import torch.distributed as dist

        if not dist.is_available():
            raise RuntimeError(
                f"{WORLD_SIZE}={ranks.world_size}, but this PyTorch build has no "
                "torch.distributed; run the trial as one process"
            )
        timeout = timedelta(seconds=timeout_seconds)
        self._owns_default = not dist.is_initialized()
        if self._owns_default:
            dist.init_process_group("gloo", timeout=timeout)
        if dist.get_world_size() != ranks.world_size or dist.get_rank() != ranks.rank:
            raise RuntimeError(
                f"torch.distributed has rank {dist.get_rank()} of {dist.get_world_size()}, "
                f"the environment says {ranks.rank} of {ranks.world_size} ({RANK}, "
                f"{WORLD_SIZE}): start the trial with torchrun, or leave both unset"
            )
        self._ranks = ranks
        self._group = dist.new_group(backend="gloo", timeout=timeout)

    @property
    def ranks(self) -> Ranks:
        return self._ranks

    def any(self, flags: Sequence[bool]) -> tuple[bool, ...]:
        import torch
        import torch.distributed as dist

        values = torch.tensor([int(flag) for flag in flags], dtype=torch.int32)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self._group)
        return tuple(bool(value) for value in values.tolist())

    def gather(self, item: T) -> list[T]:
        import torch.distributed as dist

        items: list[Any] = [None] * self._ranks.world_size
        dist.all_gather_object(items, item, group=self._group)
        return items

    def share(self, item: T) -> T:
        import torch.distributed as dist

        box: list[Any] = [item]
        dist.broadcast_object_list(box, src=0, group=self._group)
        shared: T = box[0]
        return shared

    def close(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            return
        dist.destroy_process_group(self._group)
        if self._owns_default:
            dist.destroy_process_group()


def join(env: Mapping[str, str] | None = None, *, longest_pause: float = 0.0) -> Group:
    """The group of this trial's processes: `Alone` for one, else a `TorchGroup`.

    `longest_pause`: seconds rank 0 may wait at a rung (LRSWEEP_GATE_TIMEOUT), which the
    other ranks spend waiting in a collective.
    """
    ranks = detect_ranks(os.environ if env is None else env)
    if ranks.world_size == 1:
        return Alone()
    return TorchGroup(ranks, longest_pause + COLLECTIVE_MARGIN_SECONDS)
