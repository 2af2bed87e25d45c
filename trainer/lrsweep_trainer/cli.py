"""`python -m lrsweep_trainer`: train one trial of a built-in task.

Every flag has an LRSWEEP_* variable (docs/contract.md), so the operator can drive the
trainer through the environment alone, and a flag given explicitly wins. Flags, variables
and defaults meet in two models, the contract's `RunSettings` and the trainer's own
`TrainerOptions` (`Settings.gather`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

from lrsweep import contract
from lrsweep.engine.rangetest import DEFAULT_DIVERGENCE_FACTOR, RangeTestResult
from lrsweep_trainer.distributed import detect_ranks, join
from lrsweep_trainer.numerics import use_portable_numerics
from lrsweep_trainer.optimizers import (
    DEFAULT_MOMENTUM,
    OptimizerConfig,
    OptimizerName,
    parse_optimizer,
)
from lrsweep_trainer.report import Session, logger
from lrsweep_trainer.schedules import DEFAULT_GAMMA, Schedule, ScheduleName, parse_schedule
from lrsweep_trainer.settings import (
    DEFAULT_RANGE_END,
    DEFAULT_RANGE_START,
    RunSettings,
    Settings,
    parse_bool,
    parse_positive_int,
    text,
)
from lrsweep_trainer.summary import SummaryInput, render_summary, write_summary
from lrsweep_trainer.tasks import TASKS, get_task
from lrsweep_trainer.train import (
    DEVICES,
    Device,
    TrainConfig,
    join_processes,
    resolve_device,
    train,
)

DEFAULT_TASK = "digits-mlp"
# Without --eval-every, a run evaluates about this many times.
EVALUATIONS = 12

EXIT_FAILED = 1


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def _gamma(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {text!r}")
    return value


def _task(text: str) -> str:
    return get_task(text).name


def _device(text: str) -> Device:
    for device in DEVICES:
        if text == device:
            return device
    raise ValueError(f"must be one of {', '.join(DEVICES)}, got {text!r}")


class TrainerOptions(Settings):
    """The built-in trainer's own settings (LRSWEEP_TASK, ...; the operator may set them as
    sweep dimensions). None: the task's default."""

    task: Annotated[str, text(_task)] = DEFAULT_TASK
    optimizer: Annotated[OptimizerName | None, text(parse_optimizer)] = None
    momentum: Annotated[float, text(_fraction)] = DEFAULT_MOMENTUM
    nesterov: Annotated[bool, text(parse_bool)] = False
    weight_decay: Annotated[float | None, text(_non_negative_float)] = None
    schedule: Annotated[ScheduleName | None, text(parse_schedule)] = None
    warmup_steps: Annotated[int, text(_non_negative_int)] = 0
    decay_every: Annotated[int | None, text(parse_positive_int)] = None
    gamma: Annotated[float, text(_gamma)] = DEFAULT_GAMMA
    batch_size: Annotated[int | None, text(parse_positive_int)] = None
    device: Annotated[Device, text(_device)] = "auto"
    threads: Annotated[int, text(parse_positive_int)] = 1
    portable_numerics: Annotated[bool, text(parse_bool)] = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Leave the operator a reason, not just exit code 2.
        path = (
            os.environ.get(contract.TERMINATION_PATH, "").strip()
            or contract.DEFAULT_TERMINATION_PATH
        )
        summary = SummaryInput(
            trial=os.environ.get(contract.TRIAL, ""),
            status="failed",
            reason=f"bad arguments: {message}",
            step=0,
            learning_rate=float("nan"),
        )
        write_summary(render_summary(summary), path)
        super().error(message)


def _epilog() -> str:
    width = max(len(name) for name in TASKS)
    lines = [f"  {name:<{width}}  {task.description}" for name, task in TASKS.items()]
    return "tasks:\n" + "\n".join(lines)


# Fields whose flag is not --<field with dashes>.
FLAGS = {"learning_rate": "--lr", "max_steps": "--steps"}
# The flags' help, by field: what `--help` says besides the variable each defaults from.
HELP = {
    "task": f"built-in task, default {DEFAULT_TASK}",
    "learning_rate": "(peak) learning rate; default: the task's",
    "max_steps": "training steps; default: the task's",
    "eval_every": f"evaluate every N steps and at the last; default: steps / {EVALUATIONS}",
    "seed": "seed of split, weights, batch order; default 0",
    "optimizer": "sgd, adam or adamw; default: the task's",
    "momentum": f"SGD momentum; default {DEFAULT_MOMENTUM}",
    "weight_decay": "weight decay; default 0.01 for adamw, else 0",
    "schedule": "constant, step, exponential or cosine; default: the task's",
    "warmup_steps": "linear warm-up steps; default 0",
    "decay_every": "step/exponential decay: multiply by gamma every N steps; default: a "
    "third of the run",
    "gamma": f"decay factor; default {DEFAULT_GAMMA}",
    "batch_size": "minibatch size; default: the task's",
    "device": "auto, cpu or cuda; default auto",
    "threads": "torch CPU threads; default 1",
    "metrics_port": "Prometheus endpoint port; 0 (the default): none",
    "metrics_host": f"address to bind the endpoint to; default {contract.DEFAULT_METRICS_HOST}",
    "termination_path": f"where to write the summary; default {contract.DEFAULT_TERMINATION_PATH}",
    "mode": "train (the default) or range-test",
    "range_start": f"range test: first rate; default {DEFAULT_RANGE_START:g}",
    "range_end": f"range test: last rate; default {DEFAULT_RANGE_END:g}",
    "divergence_factor": "stop when the loss exceeds this times the initial (range test: "
    f"best smoothed) loss; default {DEFAULT_DIVERGENCE_FACTOR:g}",
    "rungs": "comma-separated steps the summary keeps exactly",
    "gate_timeout": "pause up to this long at each rung for the sweep's go-ahead; 0 (the "
    "default): never",
    "objective": "the metric the sweep compares at the rungs: no pause at a rung without it",
    "checkpoint_dir": "keep the trial's state here at each evaluation, and go on from it "
    "when started again",
    "checkpoint_every": "keep a checkpoint only at evaluations at least N steps after the "
    "last one kept",
    "sweep": "the sweep's name (metric label)",
    "trial": "the trial's id (metric label)",
}
SWITCHES = {
    "final_attempt": "no attempt follows if this one fails: a failed run deletes its checkpoint",
    "nesterov": "SGD: Nesterov momentum",
    "portable_numerics": "CPU kernels that give the same results on every x86 CPU, slower",
}


def flag(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def build_parser() -> argparse.ArgumentParser:
    """Flags for every field of RunSettings and TrainerOptions. Each defaults to nothing:
    unset, the field comes from its LRSWEEP_* variable, else its default (`main`)."""
    parser = _Parser(
        prog="python -m lrsweep_trainer",
        description="Train one LRSweep trial of a built-in task (or run a range test).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for field, about in HELP.items():
        variable = Settings.variable(field)
        parser.add_argument(flag(field), dest=field, help=f"{about} (env {variable})")
    for field, about in SWITCHES.items():
        parser.add_argument(
            flag(field),
            dest=field,
            action=argparse.BooleanOptionalAction,
            help=f"{about} (env {Settings.variable(field)})",
        )
    parser.add_argument(
        "--range-test",
        dest="mode",
        action="store_const",
        const="range-test",
        help="run a learning-rate range test (same as --mode range-test)",
    )
    return parser


def _given(args: argparse.Namespace, model: type[Settings]) -> dict[str, Any]:
    return {field: getattr(args, field) for field in model.model_fields if hasattr(args, field)}


def configure_logging() -> None:
    """Progress lines to stderr, once per process."""
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class _StderrHandler(logging.Handler):
    # Looks sys.stderr up at each line rather than holding the stream it started with, which
    # a test runner may have swapped out and closed since.
    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never take the trial down
            self.handleError(record)


def _describe(result: RangeTestResult) -> str:
    divergence = "not within the range" if result.divergence is None else f"{result.divergence:.3g}"
    return "\n".join(
        [
            "range test suggestions:",
            f"  steepest descent  {result.steepest:.3g}",
            f"  valley            {result.valley:.3g}",
            f"  lowest loss       {result.minimum:.3g}",
            f"  divergence        {divergence}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = {field: flag(field) for field in [*HELP, *SWITCHES]}
    try:
        options = TrainerOptions.gather(
            os.environ, overrides=_given(args, TrainerOptions), names=names
        )
        if options.portable_numerics:
            use_portable_numerics()  # before torch computes anything: it picks kernels once
        defaults = get_task(options.task).defaults
        fallbacks = {"learning_rate": defaults.learning_rate, "max_steps": defaults.steps}
        given = _given(args, RunSettings)
        steps = RunSettings.gather(
            os.environ, fallbacks=fallbacks, overrides=given, names=names
        ).max_steps
        assert steps is not None  # the task's default at the least
        fallbacks["eval_every"] = max(1, steps // EVALUATIONS)
        run_settings = RunSettings.gather(
            os.environ, fallbacks=fallbacks, overrides=given, names=names
        )
        schedule = Schedule(
            name=options.schedule or defaults.schedule,
            total_steps=steps,
            warmup_steps=options.warmup_steps,
            decay_every=options.decay_every,
            gamma=options.gamma,
        )
        optimizer = OptimizerConfig(
            name=options.optimizer or defaults.optimizer,
            momentum=options.momentum,
            nesterov=options.nesterov,
            weight_decay=options.weight_decay,
        )
    except ValueError as error:
        parser.error(str(error))
    config = TrainConfig(
        task=get_task(options.task),
        batch_size=options.batch_size or defaults.batch_size,
        optimizer=optimizer,
        device=options.device,
        threads=options.threads,
    )
    configure_logging()
    ranks = detect_ranks(os.environ)
    if ranks.world_size > 1:  # under torchrun: one process of several
        join_processes(resolve_device(config.device, ranks.local_rank))
    group = join(longest_pause=run_settings.gate_timeout)
    session = Session(run_settings, schedule=schedule, group=group)
    try:
        with session:
            train(config, session)
    except Exception:
        logger.exception("trial failed")
        return EXIT_FAILED
    result = session.range_result
    if result is not None:
        print(_describe(result))
    return 0
