"""The built-in training loop: one trial of a built-in task, reported through a Session.

Deterministic for a seed on the CPU: the seed fixes the data split, the initial weights and
the batch order, and torch runs on a fixed number of threads (1 by default). A run that goes
on from a checkpoint (`Session.resume`) continues that same run: the checkpoint keeps the
model, the optimizer, the batch order's position and torch's random state.

Train loss at an evaluation is measured on a fixed subset of the training set, as large as
the validation set (at most TRAIN_EVAL_SIZE examples) and spread evenly over it, with the
model in eval mode: the same model state and sample size as the validation loss, so the two
are comparable, and independent of which batches happened to come last.

Under torchrun the loop trains with DistributedDataParallel: every rank draws the same
minibatch and takes its share of it, so the ranks together take the step one process would
(the gradient of the whole minibatch, up to rounding), and each step's reported loss is the
minibatch's. Evaluations run whole on every rank (the models are the same).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lrsweep_trainer.optimizers import (
    OptimizerConfig,
    build_optimizer,
    param_groups,
    set_learning_rate,
)
from lrsweep_trainer.report import Session
from lrsweep_trainer.tasks import Task
from lrsweep_trainer.tasks.base import accuracy

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")

TRAIN_EVAL_SIZE = 512
# Batch order uses its own stream, so it does not repeat the data split's random numbers.
ORDER_SEED_OFFSET = 7919


@dataclass(frozen=True)
class TrainConfig:
    task: Task
    batch_size: int
    optimizer: OptimizerConfig
    device: Device = "auto"
    threads: int = 1


def resolve_device(name: Device, local_rank: int = 0) -> torch.device:
    """The device to train on; on CUDA, the GPU of the process's local rank (torchrun)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but CUDA is not available")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"local rank {local_rank} has no GPU: this node shows {torch.cuda.device_count()}; "
            "give the trial as many GPUs as torchrun's --nproc-per-node"
        )
    return torch.device("cuda", local_rank)


def join_processes(device: torch.device) -> None:
    """Under torchrun, join the trial's processes for training: nccl on CUDA, else gloo.

    Before the session starts, which then shares this process group (`report.start`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


class Batches:
    """Minibatch indices: a fresh seeded shuffle each epoch, the ragged end dropped."""

    def __init__(self, count: int, batch_size: int, seed: int, device: torch.device) -> None:
        self._count = count
        self._size = min(batch_size, count)
        self._generator = torch.Generator().manual_seed(seed + ORDER_SEED_OFFSET)
        self._device = device
        self._order = torch.empty(0, dtype=torch.long)
        self._position = 0

    def next(self) -> Tensor:
        if self._position + self._size > len(self._order):
            self._order = torch.randperm(self._count, generator=self._generator)
            self._position = 0
        batch = self._order[self._position : self._position + self._size]
        self._position += self._size
        return batch.to(self._device)

    def state_dict(self) -> dict[str, Tensor | int]:
        return {
            "generator": self._generator.get_state(),
            "order": self._order,
            "position": self._position,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._generator.set_state(state["generator"])
        self._order = state["order"]
        self._position = int(state["position"])


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Loss (and accuracy for classification) of `model` on one set, in eval mode."""
    model.eval()
    with torch.no_grad():
        output = model(inputs)
        result = {"loss": float(task.loss(output, targets))}
        if task.classification:
            result["accuracy"] = accuracy(output, targets)
    model.train()
    return result


def _total_norm(parameters: list[nn.Parameter]) -> float:
    """The L2 norm of all gradients together, as `clip_grad_norm_` measures it.

    Spelled out rather than `torch.nn.utils.get_total_norm`, which needs torch 2.6: the
    trainer image's PyTorch is older (Dockerfile), and pyproject allows torch 2.2.
    """
    norms = [torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _minibatch_loss(loss: Tensor, world_size: int) -> float:
    """The loss over the whole minibatch: the mean of the ranks' shares' losses."""
    if world_size == 1:
        return float(loss.item())
    total = loss.detach().clone()
    dist.all_reduce(total)
    return float(total.item()) / world_size


def train(config: TrainConfig, session: Session) -> None:
    """Train until the budget is spent or the session says stop; the caller finishes it."""
    torch.set_num_threads(config.threads)
    ranks = session.ranks
    device = resolve_device(config.device, ranks.local_rank)
    seed = session.seed
    torch.manual_seed(seed)
    task = config.task
    data = task.load(seed).to(device)
    model = task.build_model(data).to(device)
    # Several processes train one model: DDP averages their gradients at every step.
    trained: nn.Module = model
    if ranks.world_size > 1:
        on_gpu = [device] if device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=on_gpu)
    optimizer = build_optimizer(param_groups(model), config.optimizer, session.lr_at(1))
    parameters = [p for p in model.parameters() if p.requires_grad]
    count = len(data.train_targets)
    batches = Batches(count, config.batch_size, seed, device)
    subset_size = min(TRAIN_EVAL_SIZE, len(data.val_targets), count)
    subset = torch.linspace(0, count - 1, subset_size).long()
    train_eval_inputs, train_eval_targets = data.train_inputs[subset], data.train_targets[subset]

    def evaluation() -> dict[str, float]:
        on_train = evaluate(task, model, train_eval_inputs, train_eval_targets)
        on_val = evaluate(task, model, data.val_inputs, data.val_targets)
        metrics = {"train_loss": on_train["loss"], "val_loss": on_val["loss"]}
        if "accuracy" in on_val:
            metrics["val_accuracy"] = on_val["accuracy"]
        return metrics

    def state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "batches": batches.state_dict(),
            "rng": torch.get_rng_state(),
        }

    kept = session.resume(state)
    if kept is not None:
        model.load_state_dict(kept["model"])
        optimizer.load_state_dict(kept["optimizer"])
        batches.load_state_dict(kept["batches"])
        torch.set_rng_state(kept["rng"])
    # Step 0, before any update: the baseline that tells a stuck run from a fast one.
    elif not session.range_test and session.log(0, **evaluation()):
        return
    model.train()
    for step in range(session.start_step + 1, session.max_steps + 1):
        set_learning_rate(optimizer, session.lr_at(step))
        batch = batches.next().tensor_split(ranks.world_size)[ranks.rank]
        loss = task.loss(trained(data.train_inputs[batch]), data.train_targets[batch])
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)  # typed, unlike Tensor.backward
        grad_norm = _total_norm(parameters)
        optimizer.step()
        stop = session.log_step(step, _minibatch_loss(loss, ranks.world_size), grad_norm=grad_norm)
        if not session.range_test and (stop or session.should_evaluate(step)):
            stop = session.log(step, **evaluation())
        if stop:
            break
