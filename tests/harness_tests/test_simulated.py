"""Simulated trainers (tests/harness/simulated.py): the trainer contract with no process.

Covers: the metrics endpoint read by the operator's own parser (names, labels, the evaluation
history); the summary at the end, in the trainer's schema, as the operator parses it; a
diverging rate ending `diverged`; SIGTERM ending the run with a summary and exit 0, SIGKILL
with 137 and none; the rung gate holding a trial until `POST /continue`; a bad environment
failing with exit code 2; the loss curve being lowest at the optimum; and, through the test
cluster, a pod of the simulated image ending Succeeded with its summary as the termination
message, without a process of its own, and without the service-account kubeconfig file a
process would be given.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import urllib.request
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from lrsweep.contract import HISTORY_PATH
from lrsweep.runtime.metrics import parse_metrics, parse_summary
from tests.harness.pytest_plugin import wait_for
from tests.harness.simulated import SIMULATED_IMAGE, SimulatedTrainer, loss_at
from tests.harness.threaded import ThreadedHarness
from tests.harness_tests.conftest import CoreApi

SLOW = 3600.0  # seconds per step: the run stands still unless a test moves it


def environment(**overrides: str) -> dict[str, str]:
    env = {
        "LRSWEEP_LEARNING_RATE": "0.1",
        "LRSWEEP_MAX_STEPS": "100",
        "LRSWEEP_EVAL_EVERY": "25",
        "LRSWEEP_SWEEP": "sim",
        "LRSWEEP_TRIAL": "t001",
        "LRSWEEP_RUNGS": "25,75",
        "LRSWEEP_SIM_STEP_SECONDS": "0",
    }
    env.update(overrides)
    return env


@pytest.fixture
def endpoint() -> dict[str, str]:
    """A free port on 127.0.0.1 for the trainer's endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"LRSWEEP_METRICS_HOST": "127.0.0.1", "LRSWEEP_METRICS_PORT": str(port)}


def url(endpoint: dict[str, str], path: str) -> str:
    return f"http://127.0.0.1:{endpoint['LRSWEEP_METRICS_PORT']}{path}"


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def ended(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    trainer = await SimulatedTrainer.start(env, tmp_path / "message", tmp_path / "log")
    code = await trainer.wait()
    return code, (tmp_path / "message").read_text()


def fetch(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


def test_a_finished_run_leaves_the_trainers_summary_with_its_rungs(tmp_path: Path) -> None:
    code, message = run(ended(tmp_path, environment()))
    summary = json.loads(message)
    assert code == 0
    assert (summary["v"], summary["trial"], summary["status"]) == (1, "t001", "finished")
    assert summary["history"]["step"] == [0, 25, 50, 75, 100]
    reading = parse_summary(message)
    assert reading.step == 100
    assert {"train_loss", "val_loss"} <= set(reading.points[-1].metrics)


def test_a_rate_far_above_the_optimum_diverges(tmp_path: Path) -> None:
    code, message = run(ended(tmp_path, environment(LRSWEEP_LEARNING_RATE="2.0")))
    assert code == 0
    assert json.loads(message)["status"] == "diverged"


def test_a_bad_environment_fails_as_a_usage_error(tmp_path: Path) -> None:
    code, message = run(ended(tmp_path, environment(LRSWEEP_MAX_STEPS="none")))
    assert code == 2
    assert json.loads(message)["status"] == "failed"
    assert "LRSWEEP_MAX_STEPS" in json.loads(message)["reason"]


def test_sigterm_ends_the_run_with_a_summary_and_exit_zero(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str]:
        env = environment(LRSWEEP_SIM_STEP_SECONDS=str(SLOW))
        trainer = await SimulatedTrainer.start(env, tmp_path / "message", tmp_path / "log")
        await asyncio.sleep(0.05)
        trainer.send_signal(signal.SIGTERM)
        return await trainer.wait(), (tmp_path / "message").read_text()

    code, message = run(scenario())
    assert code == 0
    assert json.loads(message)["reason"] == "stopped by SIGTERM at step 1"


def test_sigkill_ends_the_run_at_once_without_a_summary(tmp_path: Path) -> None:
    async def scenario() -> int:
        env = environment(LRSWEEP_SIM_STEP_SECONDS=str(SLOW))
        (tmp_path / "message").write_text("")
        trainer = await SimulatedTrainer.start(env, tmp_path / "message", tmp_path / "log")
        await asyncio.sleep(0.05)
        trainer.send_signal(signal.SIGKILL)
        return await trainer.wait()

    assert run(scenario()) == 137
    assert (tmp_path / "message").read_text() == ""


def test_the_endpoint_serves_what_the_operator_reads_as_this_trials_progress(
    tmp_path: Path, endpoint: dict[str, str]
) -> None:
    async def scenario() -> str:
        env = environment(LRSWEEP_SIM_STEP_SECONDS=str(SLOW), **endpoint)
        trainer = await SimulatedTrainer.start(env, tmp_path / "message", tmp_path / "log")
        await asyncio.sleep(0.05)
        _, text = await asyncio.to_thread(fetch, url(endpoint, HISTORY_PATH))
        trainer.send_signal(signal.SIGKILL)
        return text

    reading = parse_metrics(run(scenario()), {"sweep": "sim", "trial": "t001"})
    assert reading.step == 0
    assert not reading.finished
    assert reading.points[0].metrics["train_loss"] == loss_at(0.1, 0, 100, 0.1)


def test_the_rung_gate_holds_the_trial_until_the_sweeps_go_ahead(
    tmp_path: Path, endpoint: dict[str, str]
) -> None:
    async def scenario() -> tuple[int | None, int | None, int]:
        env = environment(LRSWEEP_GATE_TIMEOUT="600", LRSWEEP_OBJECTIVE="val_loss", **endpoint)
        trainer = await SimulatedTrainer.start(env, tmp_path / "message", tmp_path / "log")
        await asyncio.sleep(0.1)
        held = parse_metrics((await asyncio.to_thread(fetch, url(endpoint, "/metrics")))[1]).step
        await asyncio.to_thread(fetch, url(endpoint, "/continue?step=25"), "POST")
        await asyncio.sleep(0.1)
        next_rung = parse_metrics(
            (await asyncio.to_thread(fetch, url(endpoint, "/metrics")))[1]
        ).step
        await asyncio.to_thread(fetch, url(endpoint, "/continue?step=75"), "POST")
        return held, next_rung, await trainer.wait()

    held, next_rung, code = run(scenario())
    assert (held, next_rung, code) == (25, 75, 0)


def test_the_loss_curve_ends_lowest_at_the_optimum() -> None:
    rates = [10**k for k in (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0)]
    final = {rate: loss_at(rate, 300, 300, 0.1) for rate in rates}
    assert min(final, key=lambda rate: final[rate] if math.isfinite(final[rate]) else 1e9) == 0.1


def run_simulated_pod(core: CoreApi, namespace: str, name: str) -> Any:
    """Create a pod of the simulated image with `environment()`; the pod once Succeeded."""
    env = [{"name": k, "value": v} for k, v in environment().items()]
    pod = {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "trainer", "image": f"{SIMULATED_IMAGE}:1", "env": env}],
        },
    }
    core.create_namespaced_pod(namespace, pod)

    def succeeded() -> Any:
        found = core.read_namespaced_pod(name, namespace)
        return found if found.status.phase == "Succeeded" else None

    return wait_for(succeeded, timeout=30)


def test_a_simulated_pod_runs_no_process_and_ends_with_its_summary(
    harness: ThreadedHarness, core: CoreApi, kube_namespace: str
) -> None:
    pod = run_simulated_pod(core, kube_namespace, "sim")
    state = pod.status.container_statuses[0].state.terminated
    assert json.loads(state.message)["status"] == "finished"
    assert int(state.container_id.removeprefix("harness://")) > 2**22  # no process id


def test_a_simulated_pod_is_given_no_service_account_kubeconfig(
    harness: ThreadedHarness, core: CoreApi, kube_namespace: str
) -> None:
    pod = run_simulated_pod(core, kube_namespace, "sim-creds")
    pod_dir = harness.harness.state_dir / "pods" / pod.metadata.uid
    assert (pod_dir / "trainer" / "log").exists()  # the pod's own folder is there
    assert not (pod_dir / "service-account.kubeconfig").exists()
