"""The trainer <-> operator contract (docs/contract.md), in the names both sides import.

The environment a trial receives, the paths and series of its endpoint, the limits and
version of its summary, its exit codes. The trainer (`lrsweep_trainer`) and the operator's
runtimes import these, so the two sides cannot drift apart. Standard library only: a
training image imports it without the operator's packages.
"""

from __future__ import annotations

# -- environment: what LRSweep tells a trial ----------------------------------------------
LEARNING_RATE = "LRSWEEP_LEARNING_RATE"
MAX_STEPS = "LRSWEEP_MAX_STEPS"
EVAL_EVERY = "LRSWEEP_EVAL_EVERY"
SEED = "LRSWEEP_SEED"
SWEEP = "LRSWEEP_SWEEP"
TRIAL = "LRSWEEP_TRIAL"
METRICS_PORT = "LRSWEEP_METRICS_PORT"
METRICS_HOST = "LRSWEEP_METRICS_HOST"
TERMINATION_PATH = "LRSWEEP_TERMINATION_PATH"
RUNGS = "LRSWEEP_RUNGS"
MODE = "LRSWEEP_MODE"
RANGE_START = "LRSWEEP_RANGE_START"
RANGE_END = "LRSWEEP_RANGE_END"
GATE_TIMEOUT = "LRSWEEP_GATE_TIMEOUT"
OBJECTIVE = "LRSWEEP_OBJECTIVE"
CHECKPOINT_DIR = "LRSWEEP_CHECKPOINT_DIR"
CHECKPOINT_EVERY = "LRSWEEP_CHECKPOINT_EVERY"
FINAL_ATTEMPT = "LRSWEEP_FINAL_ATTEMPT"
# Set by no sweep: lets a user tune the trainer's divergence rule the same way.
DIVERGENCE_FACTOR = "LRSWEEP_DIVERGENCE_FACTOR"
# Every variable above, in the order docs/contract.md lists them.
VARIABLES = (
    LEARNING_RATE, MAX_STEPS, EVAL_EVERY, SEED, SWEEP, TRIAL, METRICS_PORT, METRICS_HOST,
    TERMINATION_PATH, RUNGS, MODE, GATE_TIMEOUT, OBJECTIVE, RANGE_START, RANGE_END,
    CHECKPOINT_DIR, FINAL_ATTEMPT, CHECKPOINT_EVERY,
)  # fmt: skip

MODES = ("train", "range-test")
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# Every interface: the operator scrapes the pod from outside it.
DEFAULT_METRICS_HOST = "0.0.0.0"

# -- the endpoint ---------------------------------------------------------------------------
METRICS_PATH = "/metrics"  # GET: bounded series, for Prometheus
HISTORY_PATH = "/history"  # GET: those and the evaluations (HISTORY_SERIES), for the sweep
CONTINUE_PATH = "/continue"  # POST ?step=N: go on past the rung at step N
DISCARD_PATH = "/discard"  # POST: the sweep decided the trial; keep no checkpoint
SERIES_PREFIX = "lrsweep_trial_"  # every series a trainer serves
STEP_SERIES = f"{SERIES_PREFIX}step"  # the last completed training step
TRAIN_LOSS_SERIES = f"{SERIES_PREFIX}train_loss"  # at the last evaluation
VAL_LOSS_SERIES = f"{SERIES_PREFIX}val_loss"  # at the last evaluation
RATE_SERIES = f"{SERIES_PREFIX}learning_rate"  # the schedule's rate at the current step
GRAD_NORM_SERIES = f"{SERIES_PREFIX}grad_norm"  # at the current step
FINISHED_SERIES = f"{SERIES_PREFIX}finished"  # 1 once the run has ended
DIVERGED_SERIES = f"{SERIES_PREFIX}diverged"  # 1 if it ended diverged
RESUMED_SERIES = f"{SERIES_PREFIX}resumed_from_step"  # the checkpoint's step it went on from
# What METRICS_PATH serves: one series each per trial.
BOUNDED_SERIES = (
    STEP_SERIES, TRAIN_LOSS_SERIES, VAL_LOSS_SERIES, RATE_SERIES, GRAD_NORM_SERIES,
    FINISHED_SERIES, DIVERGED_SERIES, RESUMED_SERIES,
)  # fmt: skip
# Labels metric and step: one sample per evaluation and metric (at most HISTORY_POINTS
# steps, the newest), served at HISTORY_PATH only: a step label would make a new series
# every evaluation in Prometheus.
HISTORY_SERIES = f"{SERIES_PREFIX}eval"
HISTORY_POINTS = 500
SERIES_LABELS = ("sweep", "trial")

# -- the summary (the termination message) ----------------------------------------------
SUMMARY_VERSION = 1
SUMMARY_LIMIT = 4096  # bytes: Kubernetes cuts termination messages beyond
# Range-test columns: in the summary's `rangeTest` block, not in `history`.
RANGE_COLUMNS = ("learning_rate", "smoothed_loss")

# -- exit codes ---------------------------------------------------------------------------
# A usage error (argparse's, and Python's for a script it cannot open): not retried.
EXIT_USAGE = 2
