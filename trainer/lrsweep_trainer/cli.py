"""`python -m lrsweep_trainer`: train one trial of a built-in task.

Every flag's default comes from an LRSWEEP_* variable (docs/contract.md), so the operator
can drive the trainer through the environment alone, and a flag given explicitly wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from lrsweep import contract
from lrsweep.engine.rangetest import DEFAULT_DIVERGENCE_FACTOR, RangeTestResult
from lrsweep_trainer import settings as env
from lrsweep_trainer.distributed import detect_ranks, join
from lrsweep_trainer.numerics import use_portable_numerics
from lrsweep_trainer.optimizers import DEFAULT_MOMENTUM, OptimizerConfig, parse_optimizer
from lrsweep_trainer.report import Session, logger
from lrsweep_trainer.schedules import DEFAULT_GAMMA, Schedule, parse_schedule
from lrsweep_trainer.settings import RunSettings
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

T = TypeVar("T")

DEFAULT_TASK = "digits-mlp"
# Without --eval-every, a run evaluates about this many times.
EVALUATIONS = 12

# Trainer settings outside the contract: the operator may set them as sweep dimensions.
TASK = "LRSWEEP_TASK"
OPTIMIZER = "LRSWEEP_OPTIMIZER"
MOMENTUM = "LRSWEEP_MOMENTUM"
NESTEROV = "LRSWEEP_NESTEROV"
WEIGHT_DECAY = "LRSWEEP_WEIGHT_DECAY"
SCHEDULE = "LRSWEEP_SCHEDULE"
WARMUP_STEPS = "LRSWEEP_WARMUP_STEPS"
DECAY_EVERY = "LRSWEEP_DECAY_EVERY"
GAMMA = "LRSWEEP_GAMMA"
BATCH_SIZE = "LRSWEEP_BATCH_SIZE"
DEVICE = "LRSWEEP_DEVICE"
THREADS = "LRSWEEP_THREADS"
PORTABLE_NUMERICS = "LRSWEEP_PORTABLE_NUMERICS"

EXIT_FAILED = 1


def _from_env(name: str, fallback: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or fallback


def _checked(parse: Callable[[str], T], kind: str) -> Callable[[str], T]:
    """An argparse type whose error message says what was expected."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = kind
    return convert


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m lrsweep_trainer",
        description="Train one LRSweep trial of a built-in task (or run a range test).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def add(
        flag: str,
        variable: str,
        kind: Callable[[str], object],
        text: str,
        fallback: object = None,
    ) -> None:
        default = _from_env(variable, None if fallback is None else str(fallback))
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (env {variable})")

    def switch(flag: str, variable: str, text: str) -> None:
        """An on/off flag (--x / --no-x) whose default comes from a true/false variable."""
        try:
            default = env.parse_bool(_from_env(variable, "false") or "false")
        except ValueError as error:
            parser.error(f"{variable}: {error}")
        parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=default,
            help=f"{text} (env {variable})",
        )

    add(
        "--task",
        TASK,
        _checked(_task, "task"),
        f"built-in task, default {DEFAULT_TASK}",
        fallback=DEFAULT_TASK,
    )
    add(
        "--lr",
        contract.LEARNING_RATE,
        _checked(env.parse_positive_float, "rate"),
        "(peak) learning rate; default: the task's",
    )
    add(
        "--steps",
        contract.MAX_STEPS,
        _checked(env.parse_positive_int, "steps"),
        "training steps; default: the task's",
    )
    add(
        "--eval-every",
        contract.EVAL_EVERY,
        _checked(env.parse_positive_int, "steps"),
        f"evaluate every N steps and at the last; default: steps / {EVALUATIONS}",
    )
    add(
        "--seed",
        contract.SEED,
        _checked(int, "integer"),
        "seed of split, weights, batch order",
        fallback=0,
    )
    add(
        "--optimizer",
        OPTIMIZER,
        _checked(parse_optimizer, "optimizer"),
        "sgd, adam or adamw; default: the task's",
    )
    add(
        "--momentum",
        MOMENTUM,
        _checked(_fraction, "momentum"),
        "SGD momentum",
        fallback=DEFAULT_MOMENTUM,
    )
    add(
        "--weight-decay",
        WEIGHT_DECAY,
        _checked(_non_negative_float, "decay"),
        "weight decay; default 0.01 for adamw, else 0",
    )
    add(
        "--schedule",
        SCHEDULE,
        _checked(parse_schedule, "schedule"),
        "constant, step, exponential or cosine; default: the task's",
    )
    add(
        "--warmup-steps",
        WARMUP_STEPS,
        _checked(_non_negative_int, "steps"),
        "linear warm-up steps",
        fallback=0,
    )
    add(
        "--decay-every",
        DECAY_EVERY,
        _checked(env.parse_positive_int, "steps"),
        "step/exponential decay: multiply by gamma every N steps; default: a third of the run",
    )
    add("--gamma", GAMMA, _checked(_gamma, "factor"), "decay factor", fallback=DEFAULT_GAMMA)
    add(
        "--batch-size",
        BATCH_SIZE,
        _checked(env.parse_positive_int, "size"),
        "minibatch size; default: the task's",
    )
    add("--device", DEVICE, _checked(_device, "device"), "auto, cpu or cuda", fallback="auto")
    add(
        "--threads",
        THREADS,
        _checked(env.parse_positive_int, "threads"),
        "torch CPU threads",
        fallback=1,
    )
    add(
        "--metrics-port",
        contract.METRICS_PORT,
        _checked(env.parse_port, "port"),
        "Prometheus endpoint port; 0: none",
        fallback=0,
    )
    add(
        "--metrics-host",
        contract.METRICS_HOST,
        str,
        "address to bind the endpoint to",
        fallback=contract.DEFAULT_METRICS_HOST,
    )
    add(
        "--termination-path",
        contract.TERMINATION_PATH,
        str,
        "where to write the summary",
        fallback=contract.DEFAULT_TERMINATION_PATH,
    )
    add(
        "--mode",
        contract.MODE,
        _checked(env.parse_mode, "mode"),
        "train or range-test",
        fallback="train",
    )
    add(
        "--range-start",
        contract.RANGE_START,
        _checked(env.parse_positive_float, "rate"),
        "range test: first rate",
        fallback=env.DEFAULT_RANGE_START,
    )
    add(
        "--range-end",
        contract.RANGE_END,
        _checked(env.parse_positive_float, "rate"),
        "range test: last rate",
        fallback=env.DEFAULT_RANGE_END,
    )
    add(
        "--divergence-factor",
        contract.DIVERGENCE_FACTOR,
        _checked(env.parse_divergence_factor, "factor"),
        "stop when the loss exceeds this times the initial (range test: best smoothed) loss",
        fallback=DEFAULT_DIVERGENCE_FACTOR,
    )
    add(
        "--rungs",
        contract.RUNGS,
        _checked(env.parse_rungs, "steps"),
        "comma-separated steps the summary keeps exactly",
        fallback="",
    )
    add(
        "--gate-timeout",
        contract.GATE_TIMEOUT,
        _checked(env.parse_seconds, "seconds"),
        "pause up to this long at each rung for the sweep's go-ahead; 0: never",
        fallback="0",
    )
    add(
        "--objective",
        contract.OBJECTIVE,
        str,
        "the metric the sweep compares at the rungs: no pause at a rung without it",
        fallback="",
    )
    add(
        "--checkpoint-dir",
        contract.CHECKPOINT_DIR,
        str,
        "keep the trial's state here at each evaluation, and go on from it when started again",
        fallback="",
    )
    add(
        "--checkpoint-every",
        contract.CHECKPOINT_EVERY,
        _checked(env.parse_positive_int, "steps"),
        "keep a checkpoint only at evaluations at least N steps after the last one kept",
    )
    switch(
        "--final-attempt",
        contract.FINAL_ATTEMPT,
        "no attempt follows if this one fails: a failed run deletes its checkpoint",
    )
    add("--sweep", contract.SWEEP, str, "the sweep's name (metric label)", fallback="")
    add("--trial", contract.TRIAL, str, "the trial's id (metric label)", fallback="")
    parser.add_argument(
        "--range-test",
        dest="mode",
        action="store_const",
        const="range-test",
        help="run a learning-rate range test (same as --mode range-test)",
    )
    switch("--nesterov", NESTEROV, "SGD: Nesterov momentum")
    switch(
        "--portable-numerics",
        PORTABLE_NUMERICS,
        "CPU kernels that give the same results on every x86 CPU, slower",
    )
    return parser


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
    if args.portable_numerics:
        use_portable_numerics()  # before torch computes anything: it picks kernels once
    task = get_task(args.task)
    defaults = task.defaults
    steps: int = args.steps or defaults.steps
    try:
        run_settings = RunSettings(
            learning_rate=args.lr or defaults.learning_rate,
            max_steps=steps,
            eval_every=args.eval_every or max(1, steps // EVALUATIONS),
            seed=args.seed,
            sweep=args.sweep,
            trial=args.trial,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            termination_path=args.termination_path,
            rungs=args.rungs,
            gate_timeout=args.gate_timeout,
            objective=args.objective.strip(),
            checkpoint_dir=args.checkpoint_dir.strip(),
            checkpoint_every=args.checkpoint_every or 0,
            final_attempt=args.final_attempt,
            mode=args.mode,
            range_start=args.range_start,
            range_end=args.range_end,
            divergence_factor=args.divergence_factor,
        )
        schedule = Schedule(
            name=args.schedule or defaults.schedule,
            total_steps=steps,
            warmup_steps=args.warmup_steps,
            decay_every=args.decay_every,
            gamma=args.gamma,
        )
        optimizer = OptimizerConfig(
            name=args.optimizer or defaults.optimizer,
            momentum=args.momentum,
            nesterov=args.nesterov,
            weight_decay=args.weight_decay,
        )
    except ValueError as error:
        parser.error(str(error))
    config = TrainConfig(
        task=task,
        batch_size=args.batch_size or defaults.batch_size,
        optimizer=optimizer,
        device=args.device,
        threads=args.threads,
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
