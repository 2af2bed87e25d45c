"""The LRSweep resource (lrsweep.dev/v1alpha1) as pydantic models.

The CRD schema is generated from these models (`lrsweep crd`), so a field's type, bounds and
description live here once. Field names are the camelCase names users write in YAML.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

GROUP = "lrsweep.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LRSweep"
PLURAL = "lrsweeps"
SINGULAR = "lrsweep"
SHORT_NAME = "lrs"
CATEGORY = "ml"
# Status keeps at most this many trials so the object stays far below etcd's size limit.
MAX_TRIALS_LIMIT = 200
# The most new attempts of a failed trial (`trial.maxRetries`).
MAX_RETRIES_LIMIT = 10
# The longest LRSweep name. A trial pod is named `<sweep>-<trial>-<attempt>` within 63
# characters (`pods.pod_name`: a DNS label, the pod's hostname) and labelled with the sweep's
# name (a label value: 63 at most). The longest suffix is the last trial's last attempt's,
# "-t199-11" (`engine.sweep.trial_id`): a longer name would be cut, and two sweeps could then
# share pod names.
LONGEST_POD_SUFFIX = f"-t{MAX_TRIALS_LIMIT - 1:03d}-{MAX_RETRIES_LIMIT + 1}"
MAX_NAME_LENGTH = 63 - len(LONGEST_POD_SUFFIX)
NAME_LIMIT_WHY = (
    f"so that the sweep's trial pod names (<name>{LONGEST_POD_SUFFIX}) and labels fit in 63 "
    "characters"
)
# First-round rates when `candidates` is not set. adaptive's are fewer: its first rung costs
# 3x as much, it trains 3 finalists to the full budget, and its budget keeps room for a
# refinement trial (`engine.strategies`).
DEFAULT_CANDIDATES = 8
ADAPTIVE_CANDIDATES = 4
# A range test sweeps its rates over at least this many steps where the budget allows.
RANGE_TEST_MIN_STEPS = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


class Strategy(enum.StrEnum):
    GRID = "grid"
    RANDOM = "random"
    RANGE_TEST = "rangeTest"
    ASHA = "asha"
    ADAPTIVE = "adaptive"


class Goal(enum.StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Suggestion(enum.StrEnum):
    """Which point of a range test's curve the rangeTest strategy trains at."""

    VALLEY = "valley"
    STEEPEST = "steepest"


class Search(_Model):
    strategy: Strategy = Field(
        Strategy.ADAPTIVE,
        description="How candidates are chosen, and whether early stopping cuts them: grid, "
        "random, rangeTest, asha or adaptive (see the README's Strategies).",
    )
    min: float = Field(1e-5, gt=0, description="Lowest learning rate to try (log scale).")
    max: float = Field(1.0, gt=0, description="Highest learning rate to try (log scale).")
    values: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TRIALS_LIMIT,
        description="Explicit rates for the first round instead of a range (adaptive then "
        "runs no range test; rangeTest ignores them).",
    )
    candidates: int | None = Field(
        None,
        ge=1,
        le=64,
        description=f"Rates tried in the first round; default {ADAPTIVE_CANDIDATES} for adaptive "
        f"(its first rung is longer), {DEFAULT_CANDIDATES} for the other strategies.",
    )
    seeds: int = Field(
        1,
        ge=1,
        le=10,
        description="Training runs per rate, with seeds 0..n-1; a rate scores the mean over "
        "them. Early stopping judges a rate by its seed-0 run; the others follow it.",
    )
    maxTrials: int = Field(
        32, ge=1, le=MAX_TRIALS_LIMIT, description="Upper bound on trials, range test included."
    )
    parallelism: int = Field(4, ge=1, le=256, description="Trials running at once.")
    suggestion: Suggestion = Field(
        Suggestion.VALLEY, description="rangeTest strategy: which suggestion to train at."
    )
    refineRounds: int = Field(
        3,
        ge=0,
        le=5,
        description="adaptive: extra rounds after the first, each probing half a spacing (on "
        "a log scale) from the best rate: past the edge when it is the lowest or highest tried, "
        "else towards its better neighbour first, while they are more than sqrt(2) apart; as "
        "long as its trials have got under 5 full runs (steps trained again after a park or "
        "a retry not counted).",
    )

    @property
    def candidate_count(self) -> int:
        """`candidates`, or the strategy's default."""
        if self.candidates is not None:
            return self.candidates
        return ADAPTIVE_CANDIDATES if self.strategy is Strategy.ADAPTIVE else DEFAULT_CANDIDATES

    @field_validator("values", mode="before")
    @classmethod
    def _check_values(cls, values: object) -> object:
        """Name a rate that is not one (the bounds of `values` refuse it, less clearly)."""
        for i, value in enumerate(values if isinstance(values, list) else []):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and not (value > 0 and math.isfinite(value)):
                raise ValueError(
                    f"item {i} is {value:g}, not a learning rate (a rate is positive and "
                    "finite): remove it or replace it"
                )
        return values

    @model_validator(mode="after")
    def _check_range(self) -> Self:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g}); set min < max")
        return self


DEFAULT_STEPS = 3000
# Unless set, budget.evalEvery and budget.minSteps follow budget.steps, in the proportions
# the search benchmark measured the engine at: 20-30 evaluations per trial, and adaptive's
# first comparison (minSteps x reductionFactor) at 30% of a trial.
EVALUATIONS = 30  # evalEvery = steps / EVALUATIONS
FIRST_RUNG_DIVISOR = 10  # minSteps = steps / FIRST_RUNG_DIVISOR


def _share_of_steps(data: dict[str, Any], divisor: int) -> int:
    """steps / divisor, at least 1 (pydantic calls a default factory only once steps, the
    field before, is valid: `format_validation_error` drops the error that it did not)."""
    steps: int = data["steps"]
    return max(1, steps // divisor)


class Budget(_Model):
    steps: int = Field(DEFAULT_STEPS, ge=1, description="Training steps of one full trial.")
    evalEvery: int = Field(
        default_factory=lambda data: _share_of_steps(data, EVALUATIONS),
        ge=1,
        description=f"Evaluate validation loss every N steps; default: steps / {EVALUATIONS} "
        "(100 at the default steps).",
    )
    minSteps: int = Field(
        default_factory=lambda data: _share_of_steps(data, FIRST_RUNG_DIVISOR),
        ge=1,
        description="First rung: steps before a trial can be stopped early (adaptive compares "
        f"first at minSteps x reductionFactor); default: steps / {FIRST_RUNG_DIVISOR} (300 at "
        "the default steps).",
    )
    reductionFactor: int = Field(
        3, ge=2, le=10, description="ASHA: keep the top 1/reductionFactor at each rung."
    )
    rangeTestSteps: int | None = Field(
        None,
        ge=10,
        description=f"Steps of the range test; default: minSteps, at least "
        f"{RANGE_TEST_MIN_STEPS} but at most minSteps x reductionFactor (and steps).",
    )

    @model_validator(mode="after")
    def _check_steps(self) -> Self:
        for name in ("evalEvery", "minSteps"):
            value = getattr(self, name)
            if value > self.steps:
                default = "" if name in self.model_fields_set else ", the default"
                raise ValueError(
                    f"{name} ({value}{default}) must not exceed steps ({self.steps}); "
                    f"set budget.{name} to at most {self.steps} or raise budget.steps"
                )
        if self.steps < 2 * self.evalEvery:
            default = "" if "evalEvery" in self.model_fields_set else ", the default"
            raise ValueError(
                f"steps ({self.steps}) must be at least 2 x evalEvery ({self.evalEvery}"
                f"{default}): a "
                f"trial is judged from at least 3 evaluations (step 0, then every evalEvery "
                f"steps); raise budget.steps to {2 * self.evalEvery} or lower budget.evalEvery "
                f"to {max(1, self.steps // 2)}"
            )
        return self


class Objective(_Model):
    metric: str = Field(
        "val_loss",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Metric the trainer reports at each evaluation; compared at equal budget.",
    )
    goal: Goal = Field(Goal.MINIMIZE, description="minimize or maximize the metric.")


class TrialTemplate(_Model):
    template: dict[str, Any] = Field(
        description="A PodTemplateSpec. The rate arrives as env LRSWEEP_LEARNING_RATE, usable "
        "in args as $(LRSWEEP_LEARNING_RATE)."
    )
    metricsPort: int = Field(9090, ge=1, le=65535, description="Port of the trainer's metrics.")
    checkpointDir: str | None = Field(
        None,
        pattern=r"^/",
        description="A directory in the trainer container that outlives its pods (a volume the "
        "template mounts, e.g. a PersistentVolumeClaim): each trial keeps its state under it, "
        "and a retried trial goes on from there (env LRSWEEP_CHECKPOINT_DIR).",
    )
    checkpointEvery: int | None = Field(
        None,
        ge=1,
        description="Steps at least between two checkpoints, for models costly to save: one "
        "is kept at the first evaluation this many steps after the last (env "
        "LRSWEEP_CHECKPOINT_EVERY). Unset: at every evaluation.",
    )
    maxRetries: int = Field(
        2,
        ge=0,
        le=MAX_RETRIES_LIMIT,
        description="New attempts after a trial pod fails (none after exit code 2, a usage error).",
    )

    @model_validator(mode="after")
    def _check_template(self) -> Self:
        spec = self.template.get("spec")
        containers = spec.get("containers") if isinstance(spec, Mapping) else None
        if not isinstance(containers, list) or not containers:
            raise ValueError(
                "template.spec.containers must list at least one container "
                "(the first one is the trainer)"
            )
        first = containers[0]
        if not isinstance(first, Mapping) or not first.get("image"):
            raise ValueError("template.spec.containers[0].image is required")
        return self


class Output(_Model):
    configMap: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="Also write the winner to this ConfigMap (owned by the sweep).",
    )


class LRSweepSpec(_Model):
    """What to search: the rates, the training budget, the metric and the trainer's pod.
    Immutable once created."""

    search: Search = Field(
        default_factory=Search,
        description="Which learning rates to try, how many trials run at once, and how "
        "candidates are chosen and stopped early.",
    )
    budget: Budget = Field(
        default_factory=Budget,
        description="A trial's training steps, how often it is evaluated, and the rungs "
        "(steps) where early stopping compares trials.",
    )
    objective: Objective = Field(
        default_factory=Objective,
        description="The metric trials are compared on, and whether lower or higher is better.",
    )
    trial: TrialTemplate = Field(
        description="The trainer's pod, run once per attempt of each trial with its rate in "
        "the environment; retries and checkpoints."
    )
    output: Output = Field(
        default_factory=Output,
        description="Where the winner is written besides the status.",
    )


class Metadata(BaseModel):
    # Kubernetes owns metadata; keep whatever it holds, use only what we need.
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=MAX_NAME_LENGTH,
        description=f"At most {MAX_NAME_LENGTH} characters, {NAME_LIMIT_WHY}.",
    )
    namespace: str = "default"
    uid: str = ""

    @field_validator("name", mode="before")
    @classmethod
    def _check_length(cls, name: object) -> object:
        """Say why the limit (`max_length` alone would give only the number)."""
        if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"an LRSweep name can have at most {MAX_NAME_LENGTH} characters, "
                f"{NAME_LIMIT_WHY}; this one has {len(name)}: choose a shorter name"
            )
        return name


class LRSweep(_Model):
    apiVersion: Literal["lrsweep.dev/v1alpha1"]
    kind: Literal["LRSweep"]
    metadata: Metadata
    spec: LRSweepSpec
    # Status is the operator's; a document read back from a cluster may carry it.
    status: dict[str, Any] | None = None


# --- status -------------------------------------------------------------------------------


class Phase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"  # ran its whole budget
    STOPPED = "Stopped"  # stopped early by the sweep
    DIVERGED = "Diverged"
    FAILED = "Failed"  # crashed and ran out of retries


class Verdict(enum.StrEnum):
    DIVERGED = "diverged"
    UNSTABLE = "unstable"
    TOO_SLOW = "too-slow"
    OVERFITTING = "overfitting"
    PLATEAU = "plateau"
    CONVERGING = "converging"
    FAILED = "failed"
    UNKNOWN = "unknown"  # not enough evaluations yet


class TrialStatus(BaseModel):
    """One trial: a training run of one rate and seed, over one or more attempts (pods)."""

    model_config = ConfigDict(extra="forbid")
    learningRate: float = Field(
        description="The rate it trains at (0 for the range test, whose rate grows from "
        "search.min to search.max)."
    )
    seed: int = Field(0, description="Its seed, 0..search.seeds-1 (env LRSWEEP_SEED).")
    mode: Literal["train", "range-test"] = Field(
        "train",
        description="train: a training run at learningRate; range-test: the short run whose "
        "loss curve rangeTest reads.",
    )
    round: int = Field(
        0,
        description="The proposal round that added it: 0 for the first candidates and the "
        "range test, then one more for each later round (adaptive's refinements).",
    )
    phase: TrialPhase = Field(
        TrialPhase.PENDING,
        description="Pending (not running yet), Running, Succeeded (ran its whole budget), "
        "Stopped (stopped early by the sweep), Diverged, or Failed (its attempts failed "
        "with no retries left).",
    )
    step: int = Field(0, description="The last training step seen of its current attempt.")
    spentSteps: int = Field(
        0,
        description="Steps its earlier attempts trained (compute accounting): the trial has "
        "cost spentSteps + step - startStep steps.",
    )
    startStep: int = Field(
        0,
        description="The step of the checkpoint its current attempt went on from (0: from "
        "the start).",
    )
    countedTo: int = Field(
        0,
        description="The step where its last ended attempt was last seen, up to which "
        "spentSteps counts it; an attempt going on from a later checkpoint adds the steps "
        "trained unseen in between.",
    )
    score: float | None = Field(
        None,
        description="The objective at the furthest rung it reached (at the full budget once "
        "Succeeded); null before its first rung.",
    )
    verdict: Verdict = Field(
        Verdict.UNKNOWN,
        description="What its curve says about the rate: diverged (too high), unstable "
        "(overshooting), too-slow (still falling at an unchanging pace: try higher), "
        "overfitting, plateau (flat), converging, failed (the trial failed), or unknown "
        "(too few evaluations yet).",
    )
    reason: str = Field(
        "",
        description="What last happened to it, in one line: an attempt launched, why an "
        "attempt failed, or why its verdict.",
    )
    attempts: int = Field(
        0,
        description="The number of its current attempt, whose pod is <sweep>-<trial>-<attempt> "
        "(0: never launched); retries and resumes after a park count.",
    )
    queued: bool = Field(
        True,
        description="Waiting for its next attempt to launch (the first, a retry, or a resume).",
    )
    rungs: dict[str, float] = Field(
        default_factory=dict,
        description='The objective at each rung step it reached ({"900": 0.41}): what early '
        "stopping compares.",
    )
    parkedAt: int = Field(
        0,
        description="The rung step where it waits with its pod deleted, to make room for "
        "trials the cluster could not place (0: not parked); it is relaunched once promoted "
        "past that rung.",
    )
    resumes: int = Field(
        0,
        description="Attempts that went on after a park: counted in attempts, but not as "
        "failures (they use none of trial.maxRetries).",
    )
    progressTime: str = Field(
        "",
        description="When the operator last saw its step, attempt or queueing change (RFC "
        "3339): a running trial whose step stands still past the progress deadline fails "
        "its attempt as hung.",
    )


# The CRD's schema of a time the status records (metav1.Time): RFC 3339, as
# `runtime.clock.timestamp` writes it.
_DATE_TIME: JsonDict = {"format": "date-time"}


def _always_written(*names: str) -> Callable[[JsonDict], None]:
    """A model's JSON schema edit: `names` are required, and their defaults go. The operator
    always writes them, and a default the schema's format refuses ("" for a date-time) would
    make real API servers refuse the CRD."""

    def edit(schema: JsonDict) -> None:
        properties = schema["properties"]
        assert isinstance(properties, dict)
        for name in names:
            field = properties[name]
            assert isinstance(field, dict)
            field.pop("default", None)
        required = schema.setdefault("required", [])
        assert isinstance(required, list)
        required.extend(name for name in names if name not in required)

    return edit


class Condition(BaseModel):
    """One aspect of the sweep's state, as Kubernetes conditions (metav1.Condition) say it."""

    # The model keeps lastTransitionTime's default, so a condition stored without one still
    # loads; the CRD requires it, as `engine.conditions.set_condition` always writes it.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=_always_written("lastTransitionTime")
    )
    type: str = Field(
        description="Which aspect: Ready, Complete, Failed, TrialsSchedulable or Bracketed."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Why, in one CamelCase word (TrialsRunning, BestRateFound, InvalidSpec, "
        "Unschedulable, ...)."
    )
    message: str = Field("", description="Details for a person; may be empty.")
    lastTransitionTime: str = Field(
        "",
        description="When status last changed (RFC 3339).",
        json_schema_extra=_DATE_TIME,
    )
    observedGeneration: int | None = Field(
        None, description="The sweep's metadata.generation the condition was set from."
    )


class RangeTestStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steepest: float = Field(description="The rate where the loss fell fastest per decade.")
    valley: float = Field(
        description="A rate two thirds of the way down the loss's longest descent."
    )
    minimum: float = Field(description="The rate with the lowest loss before divergence.")
    divergence: float | None = Field(
        None,
        description="The first rate where the loss blew up (a multiple, 4 by default, of the "
        "lowest loss so far); null: it never did within the range.",
    )
    ceiling: float | None = Field(
        None,
        description="The first rate past the minimum where the loss climbed back above where "
        "it started; null: it never did, or the loss fell too little to tell.",
    )
    descent: float | None = Field(
        None,
        description="How far the loss fell: its drop from the start to its minimum, as a "
        "share of the start (0.3: 30%). Under 0.05 the curve says nothing about good rates.",
    )


class LRSweepStatus(BaseModel):
    """Where the sweep is, written by the operator: its trials, the range test's readings, the
    best rate so far and its conditions."""

    model_config = ConfigDict(extra="forbid")
    phase: Phase = Field(
        Phase.PENDING,
        description="Pending (no trial yet), Running, Succeeded (a best rate was found) or "
        "Failed (an invalid spec, or no trial completed: message says why).",
    )
    bestLearningRate: float | None = Field(
        None,
        description="The rate with the best objective at the full budget (its mean over the "
        "seeds), so far while the sweep runs; null until a rate has one.",
    )
    bestTrial: str | None = Field(
        None, description="The best run of bestLearningRate: its key in trials."
    )
    bestScore: float | None = Field(
        None, description="bestLearningRate's objective at the full budget, the mean over seeds."
    )
    trialCount: int = Field(0, description="Trials added so far, the range test included.")
    trials: dict[str, TrialStatus] = Field(
        default_factory=dict,
        description="Every trial by id (t000, t001, ...): one rate and seed each.",
    )
    rangeTest: RangeTestStatus | None = Field(
        None,
        description="What the range test's loss curve suggests (rangeTest and adaptive "
        "strategies); null until it has run.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (True once the sweep found its rate; its reason says why not yet), "
        "Complete or Failed once it ends, TrialsSchedulable (False while trial pods cannot "
        "be placed or started), Bracketed (the winner has a tried rate on either side). "
        "One of each type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observedGeneration: int | None = Field(
        None, description="The metadata.generation this status was computed from."
    )
    startTime: str | None = Field(
        None,
        description="When the operator first reconciled the sweep (RFC 3339).",
        json_schema_extra=_DATE_TIME,
    )
    completionTime: str | None = Field(
        None,
        description="When the sweep ended, Succeeded or Failed (RFC 3339).",
        json_schema_extra=_DATE_TIME,
    )
    message: str = Field(
        "",
        description="The sweep in one line: its progress, or its result and any caveat "
        "(a winner at the edge of the rates tried), or why it failed.",
    )


# --- loading ------------------------------------------------------------------------------


class SpecError(ValueError):
    """A sweep document is invalid. The message names the field, the value and the fix."""


def _describe(error: Mapping[str, Any], prefix: str) -> str:
    loc = ".".join(
        [prefix, *(str(part) for part in error["loc"])] if prefix else map(str, error["loc"])
    )
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown field; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{loc}: required field is missing"
    if error["type"] == "literal_error" or error["type"] == "enum":
        return f"{loc}: got {error.get('input')!r}; {msg}"
    bad = error.get("input")
    if isinstance(bad, Mapping | list):
        return f"{loc}: {msg}" if loc else msg
    return f"{loc}: {msg} (got {bad!r})" if loc else msg


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    # A default that follows another field is not computed when that field is invalid;
    # that field's own error says what to fix.
    errors = [e for e in err.errors() if e["type"] != "default_factory_not_called"]
    return "; ".join(_describe(e, prefix) for e in errors)


def parse_sweep(document: Any) -> LRSweep:
    """Validate a decoded LRSweep document, raising SpecError with one readable line."""
    if not isinstance(document, Mapping):
        raise SpecError(
            f"expected an LRSweep object (a YAML mapping), got {type(document).__name__}"
        )
    try:
        return LRSweep.model_validate(document)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None


def parse_spec(spec: Any) -> LRSweepSpec:
    """Validate a bare spec (what the operator receives), raising SpecError."""
    try:
        return LRSweepSpec.model_validate(spec)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, prefix="spec")) from None


def status_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a stored status this version understands (tolerates older/newer fields)."""
    fields = set(LRSweepStatus.model_fields)
    return {k: v for k, v in status.items() if k in fields}


def parse_status(status: Any) -> LRSweepStatus:
    """Validate a stored status (e.g. from `kubectl get lrs NAME -o yaml`), raising SpecError."""
    if not isinstance(status, Mapping):
        raise SpecError(f"status: expected a mapping, got {type(status).__name__}")
    try:
        return LRSweepStatus.model_validate(status_fields(status))
    except ValidationError as err:
        raise SpecError(format_validation_error(err, prefix="status")) from None


def load_sweep(text: str) -> LRSweep:
    """Parse the YAML text of one LRSweep document."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"invalid YAML{where}: {problem}") from None
    if len(docs) != 1:
        raise SpecError(f"expected exactly one LRSweep document, found {len(docs)}")
    return parse_sweep(docs[0])
