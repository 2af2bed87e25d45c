"""The environment contract of a trial (docs/contract.md) and Kubernetes' $(VAR) expansion."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lrsweep import contract
from lrsweep.engine.sweep import Launch

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand $(VAR) the way Kubernetes does for command, args and env values.

    A defined variable is replaced; an undefined reference is left as written; `$$` escapes
    a literal `$` (so `$$(VAR)` stays `$(VAR)`).
    """

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REF.sub(sub, text)


def contract_env(
    launch: Launch,
    *,
    sweep: str,
    metrics_port: int,
    termination_path: str | None = None,
    metrics_host: str | None = None,
    gate_timeout: float = 0.0,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
) -> dict[str, str]:
    """The LRSWEEP_* variables every trial process receives.

    `checkpoint_dir`: where the trial keeps its state across attempts (training runs only: a
    range test is short and starts again from its first step), every `checkpoint_every`
    steps at least (None: at every evaluation); the final attempt is told so, to delete it
    if it fails."""
    env = {
        contract.LEARNING_RATE: repr(launch.learning_rate),
        contract.MAX_STEPS: str(launch.steps),
        contract.EVAL_EVERY: str(launch.eval_every),
        contract.SEED: str(launch.seed),
        contract.SWEEP: sweep,
        contract.TRIAL: launch.trial,
        contract.METRICS_PORT: str(metrics_port),
        contract.RUNGS: ",".join(str(s) for s in launch.rungs),
        contract.MODE: launch.mode,
    }
    if launch.range_start is not None and launch.range_end is not None:
        env[contract.RANGE_START] = repr(launch.range_start)
        env[contract.RANGE_END] = repr(launch.range_end)
    if launch.gated and gate_timeout > 0:
        env[contract.GATE_TIMEOUT] = f"{gate_timeout:g}"
        if launch.objective:
            env[contract.OBJECTIVE] = launch.objective
    if termination_path is not None:
        env[contract.TERMINATION_PATH] = termination_path
    if metrics_host is not None:
        env[contract.METRICS_HOST] = metrics_host
    if checkpoint_dir is not None and launch.mode == "train":
        env[contract.CHECKPOINT_DIR] = checkpoint_dir
        if checkpoint_every is not None:
            env[contract.CHECKPOINT_EVERY] = str(checkpoint_every)
        if launch.final:
            env[contract.FINAL_ATTEMPT] = "true"
    return env
