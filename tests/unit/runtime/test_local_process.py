"""Turning a pod template into a local process.

Covers: Kubernetes $(VAR) expansion rules; the contract env; the trainer as default
entrypoint; container env referring to contract variables; fieldRef resolution; refusal of
env sources local trials cannot resolve (valueFrom secrets, envFrom); a missing program is
refused before the sweep, and so is a misspelt container field (the field list is the
Kubernetes client's); a trial runs in the container's workingDir (refused before the sweep
when it is not a directory here), where a relative command is looked up, else in the current
directory; a gated trial process is told how long to wait at a rung (the backend's gate
timeout); a second sweep in a directory another sweep is running in is refused, and allowed
once the first one has shut down. A training run is told its checkpoint directory (a range
test none); a trial the sweep stopped loses its checkpoint once it has exited, trials stopped
by shutting down keep theirs (for `--resume`). `check_runnable` makes every one of these refusals
before a sweep starts. A trial's metrics port is free and, where the kernel names its
ephemeral range, below it (so that no outgoing connection takes it first). A trial that
serves no metrics for the backend's silence is ended and its attempt failed, saying where it
was asked; so is one whose step stands still past the backend's progress deadline.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lrsweep.api import LRSweep, SpecError, parse_sweep
from lrsweep.engine.sweep import Launch
from lrsweep.engine.trials import Outcome, ProcessState
from lrsweep.runtime.env import contract_env, expand
from lrsweep.runtime.local import (
    CONTAINER_FIELDS,
    EPHEMERAL_RANGE,
    GATE_TIMEOUT,
    TRAINER_ENTRYPOINT,
    LocalBackend,
    build_process,
    check_command,
    check_container,
    check_runnable,
    check_working_dir,
    checkpoint_dir,
    free_port,
)

LAUNCH = Launch("t003", 2, 0.03, 1, "train", 300, 25, (25, 75, 300))


def template(**container: object) -> dict[str, object]:
    return {"spec": {"containers": [{"name": "trainer", "image": "img", **container}]}}


def test_expand_replaces_defined_variables() -> None:
    assert expand("--lr=$(LR)", {"LR": "0.1"}) == "--lr=0.1"


def test_expand_leaves_undefined_references_as_written() -> None:
    assert expand("$(NOPE) x", {}) == "$(NOPE) x"


def test_double_dollar_escapes_a_reference() -> None:
    assert expand("$$(LR) $$", {"LR": "0.1"}) == "$(LR) $"


def test_contract_env_carries_the_launch() -> None:
    env = contract_env(LAUNCH, sweep="s", metrics_port=9090)
    assert env["LRSWEEP_LEARNING_RATE"] == "0.03"
    assert env["LRSWEEP_TRIAL"] == "t003"
    assert env["LRSWEEP_RUNGS"] == "25,75,300"
    assert env["LRSWEEP_SEED"] == "1"
    assert env["LRSWEEP_MODE"] == "train"


def test_contract_env_names_the_checkpoint_directory_of_a_training_run() -> None:
    env = contract_env(LAUNCH, sweep="s", metrics_port=9090, checkpoint_dir="/c/t003")
    assert env["LRSWEEP_CHECKPOINT_DIR"] == "/c/t003"


def test_contract_env_names_no_checkpoint_directory_for_a_range_test() -> None:
    launch = replace(LAUNCH, mode="range-test", range_start=1e-5, range_end=10.0)
    env = contract_env(
        launch, sweep="s", metrics_port=9090, checkpoint_dir="/c/t003", checkpoint_every=50
    )
    assert "LRSWEEP_CHECKPOINT_DIR" not in env
    assert "LRSWEEP_CHECKPOINT_EVERY" not in env


@pytest.mark.parametrize("final", [True, False])
def test_contract_env_tells_a_final_attempt_that_keeps_checkpoints_it_is_one(final: bool) -> None:
    env = contract_env(
        replace(LAUNCH, final=final), sweep="s", metrics_port=9090, checkpoint_dir="/c/t003"
    )
    assert ("LRSWEEP_FINAL_ATTEMPT" in env) is final


def test_contract_env_says_how_often_a_training_run_keeps_a_checkpoint() -> None:
    env = contract_env(
        LAUNCH, sweep="s", metrics_port=9090, checkpoint_dir="/c/t003", checkpoint_every=50
    )
    assert env["LRSWEEP_CHECKPOINT_EVERY"] == "50"


def test_without_a_command_the_trainer_runs_with_expanded_args() -> None:
    env = contract_env(LAUNCH, sweep="s", metrics_port=1)
    argv, _ = build_process(template(args=["--lr", "$(LRSWEEP_LEARNING_RATE)"]), env, "pod")
    assert argv == [*TRAINER_ENTRYPOINT, "--lr", "0.03"]


def test_container_env_can_refer_to_contract_variables() -> None:
    env = contract_env(LAUNCH, sweep="s", metrics_port=1)
    spec = template(command=["train.sh"], env=[{"name": "LR2", "value": "x$(LRSWEEP_SEED)"}])
    argv, full = build_process(spec, env, "pod")
    assert argv == ["train.sh"]
    assert full["LR2"] == "x1"


def test_field_refs_resolve_to_local_values() -> None:
    spec = template(
        env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    )
    _, env = build_process(spec, {}, "sweep-t003-2")
    assert env["POD"] == "sweep-t003-2"


def test_secret_refs_are_refused_with_a_reason() -> None:
    spec = template(env=[{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
    with pytest.raises(SpecError, match="env 'K' uses a valueFrom source"):
        build_process(spec, {}, "pod")


def test_env_from_a_configmap_is_refused_with_a_reason() -> None:
    spec = template(envFrom=[{"configMapRef": {"name": "training-settings"}}])
    with pytest.raises(SpecError, match="envFrom: local trials cannot read ConfigMaps"):
        build_process(spec, {}, "pod")


def test_a_command_not_on_path_runs_from_beside_the_python_running_lrsweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As an image has its environment's scripts on PATH: torchrun, installed with torch."""
    monkeypatch.setenv("PATH", "/nonexistent")
    spec = template(command=["torchrun", "--standalone"])
    check_command(spec)
    argv, _ = build_process(spec, {}, "pod")
    assert argv == [str(Path(sys.executable).parent / "torchrun"), "--standalone"]


def test_a_program_not_on_path_is_refused_before_the_sweep() -> None:
    with pytest.raises(SpecError, match="'no-such-trainer' was not found on this machine"):
        check_command(template(command=["no-such-trainer"]))


def test_a_misspelt_container_field_is_refused_naming_the_likely_one() -> None:
    spec = template(comand=[sys.executable, "train.py"])
    with pytest.raises(SpecError, match=r"containers\[0\]\.comand: .*did you mean 'command'"):
        check_container(spec)


def test_every_kubernetes_container_field_is_accepted() -> None:
    from kubernetes.client import V1Container

    assert set(V1Container.attribute_map.values()) == CONTAINER_FIELDS
    check_container(template(**dict.fromkeys(CONTAINER_FIELDS - {"name", "image"}, None)))


def _sweep(program: str = "pass", **container: object) -> LRSweep:
    """An asha sweep whose trials run `program` with this Python."""
    return parse_sweep(
        {
            "apiVersion": "lrsweep.dev/v1alpha1",
            "kind": "LRSweep",
            "metadata": {"name": "local"},
            "spec": {
                "search": {"strategy": "asha", "min": 0.001, "max": 0.1},
                "budget": {"steps": 300},
                "trial": {
                    "template": template(command=[sys.executable, "-c", program], **container)
                },
            },
        }
    )


def test_a_runnable_template_passes_the_checks_before_a_sweep() -> None:
    check_runnable(_sweep(env=[{"name": "K", "value": "v"}], workingDir="/"))


@pytest.mark.parametrize(
    ("container", "refusal"),
    [
        ({"comand": ["x"]}, r"containers\[0\]\.comand: not a field"),
        ({"workingDir": "/no/such/dir"}, r"workingDir: '/no/such/dir' is not a directory"),
        ({"envFrom": [{"secretRef": {"name": "s"}}]}, "envFrom: local trials cannot read"),
    ],
)
def test_a_template_that_cannot_run_here_is_refused_before_a_sweep(
    container: dict[str, object], refusal: str
) -> None:
    with pytest.raises(SpecError, match=refusal):
        check_runnable(_sweep("pass", **container))


def test_a_missing_program_is_refused_before_a_sweep() -> None:
    sweep = _sweep()
    sweep.spec.trial.template["spec"]["containers"][0]["command"] = ["no-such-trainer"]
    with pytest.raises(SpecError, match="'no-such-trainer' was not found"):
        check_runnable(sweep)


def _gate_timeout_seen(tmp_path: Path, gate_timeout: float | None = None) -> str:
    """Launch a gated trial whose program prints its LRSWEEP_GATE_TIMEOUT; return the line."""
    sweep = _sweep("import os; print(os.environ.get('LRSWEEP_GATE_TIMEOUT'))")
    if gate_timeout is None:
        local = LocalBackend(sweep, tmp_path)
    else:
        local = LocalBackend(sweep, tmp_path, gate_timeout=gate_timeout)
    local.launch(replace(LAUNCH, gated=True))
    try:
        local.attempts[LAUNCH.trial].process.wait(timeout=60)
    finally:
        local.shutdown()
    return (tmp_path / "trials" / f"{LAUNCH.trial}-a{LAUNCH.attempt}.log").read_text().strip()


def test_a_gated_trial_waits_the_default_gate_timeout(tmp_path: Path) -> None:
    assert _gate_timeout_seen(tmp_path) == f"{GATE_TIMEOUT:g}"


def test_a_gated_trial_waits_the_backends_gate_timeout(tmp_path: Path) -> None:
    assert _gate_timeout_seen(tmp_path, gate_timeout=600.0) == "600"


# Keeps a file in its checkpoint directory, then waits to be stopped.
KEEPS_STATE = (
    "import os, pathlib, time; d = pathlib.Path(os.environ['LRSWEEP_CHECKPOINT_DIR']); "
    "d.mkdir(parents=True); (d / 'checkpoint.pt').write_text('state'); time.sleep(60)"
)


def _launched_keeping_state(tmp_path: Path) -> tuple[LocalBackend, Path]:
    local = LocalBackend(_sweep(KEEPS_STATE), tmp_path, grace=10.0)
    local.launch(LAUNCH)
    kept = checkpoint_dir(tmp_path, LAUNCH.trial) / "checkpoint.pt"
    deadline = time.monotonic() + 60
    while not kept.exists():
        assert time.monotonic() < deadline, "the trial never wrote its checkpoint"
        time.sleep(0.05)
    return local, kept


def test_a_trial_the_sweep_stopped_loses_its_checkpoint_once_it_has_exited(
    tmp_path: Path,
) -> None:
    local, kept = _launched_keeping_state(tmp_path)
    try:
        local.stop(LAUNCH.trial)
        local.attempts[LAUNCH.trial].process.wait(timeout=30)
        local.observe()
        assert not kept.parent.exists()
    finally:
        local.shutdown()


def test_trials_stopped_by_shutting_down_keep_their_checkpoints_for_resume(
    tmp_path: Path,
) -> None:
    local, kept = _launched_keeping_state(tmp_path)
    local.shutdown()
    assert kept.exists()


def test_a_second_sweep_in_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    first = LocalBackend(_sweep(), tmp_path)
    try:
        with pytest.raises(SpecError, match=r"is in use by another sweep .* --out DIR"):
            LocalBackend(_sweep(), tmp_path)
    finally:
        first.shutdown()


def test_a_directory_is_free_again_once_its_sweep_has_shut_down(tmp_path: Path) -> None:
    LocalBackend(_sweep(), tmp_path).shutdown()
    again = LocalBackend(_sweep(), tmp_path)
    again.shutdown()


def _cwd_of_a_trial(tmp_path: Path, **container: object) -> str:
    """Launch a trial that prints its working directory; return the line."""
    local = LocalBackend(_sweep("import os; print(os.getcwd())", **container), tmp_path / "out")
    local.launch(LAUNCH)
    try:
        local.attempts[LAUNCH.trial].process.wait(timeout=60)
    finally:
        local.shutdown()
    log = tmp_path / "out" / "trials" / f"{LAUNCH.trial}-a{LAUNCH.attempt}.log"
    return log.read_text().strip()


def test_a_trial_runs_in_the_containers_working_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    assert _cwd_of_a_trial(tmp_path, workingDir=str(work)) == str(work)


def test_a_trial_in_a_working_dir_writes_its_summary_into_a_relative_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    program = "import os; open(os.environ['LRSWEEP_TERMINATION_PATH'], 'w').write('{}')"
    local = LocalBackend(_sweep(program, workingDir=str(tmp_path / "work")), Path("out"))
    local.launch(LAUNCH)
    try:
        local.attempts[LAUNCH.trial].process.wait(timeout=60)
    finally:
        local.shutdown()
    summary = f"{LAUNCH.trial}-a{LAUNCH.attempt}.summary.json"
    assert (tmp_path / "out" / "trials" / summary).read_text() == "{}"


def test_without_a_working_dir_a_trial_runs_in_the_current_directory(tmp_path: Path) -> None:
    assert _cwd_of_a_trial(tmp_path) == str(Path.cwd())


def test_a_working_dir_that_is_not_a_directory_here_is_refused_before_the_sweep(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "workspace")
    with pytest.raises(SpecError, match=r"workingDir: '.*workspace' is not a directory"):
        check_working_dir(template(workingDir=missing))


def test_a_relative_command_is_looked_up_from_the_working_dir(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    check_command(template(command=["./train.sh"], workingDir=str(tmp_path)))
    with pytest.raises(SpecError, match=r"'\./train\.sh' was not found"):
        check_command(template(command=["./train.sh"], workingDir=str(tmp_path / "elsewhere")))


def test_a_trial_port_is_free_and_below_the_ephemeral_range() -> None:
    low = int(EPHEMERAL_RANGE.read_text().split()[0]) if EPHEMERAL_RANGE.exists() else None
    for _ in range(20):
        port = free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        if low is not None:
            assert port < low


def test_a_trial_that_never_serves_metrics_fails_after_the_silence(tmp_path: Path) -> None:
    local = LocalBackend(_sweep("import time; time.sleep(60)"), tmp_path, silence=0.5)
    local.launch(LAUNCH)
    try:
        assert local.observe()[0].state is ProcessState.RUNNING
        time.sleep(0.8)
        (silent,) = local.observe()
    finally:
        local.shutdown()
    assert (silent.state, silent.outcome) == (ProcessState.EXITED, Outcome.FAILED)
    assert silent.reason.startswith("served no metrics at http://127.0.0.1:")
    assert local.attempts[LAUNCH.trial].process.poll() is not None


# Serves its step-0 evaluation, then hangs.
HANGS = (
    "import time; from lrsweep_trainer import report\n"
    "with report.start(learning_rate=0.1, max_steps=300) as session:\n"
    "    session.log(0, train_loss=1.0, val_loss=1.0)\n"
    "    time.sleep(60)\n"
)


def test_a_trial_whose_step_stands_still_fails_after_the_progress_deadline(
    tmp_path: Path,
) -> None:
    local = LocalBackend(_sweep(HANGS), tmp_path, progress_deadline=1.0)
    local.launch(LAUNCH)
    try:
        deadline = time.monotonic() + 30
        while not local.attempts[LAUNCH.trial].served:
            assert time.monotonic() < deadline, "the trial never served its metrics"
            assert local.observe()[0].state is ProcessState.RUNNING
            time.sleep(0.1)
        time.sleep(1.2)
        (hung,) = local.observe()
    finally:
        local.shutdown()
    assert (hung.state, hung.outcome) == (ProcessState.EXITED, Outcome.FAILED)
    assert hung.reason.startswith("made no progress for over 1 s (at step 0)")
