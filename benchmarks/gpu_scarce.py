"""The quickstart on a cluster with fewer GPUs than its parallelism: time, idle GPUs, winner.

    python -m benchmarks.gpu_scarce [--gpus 1 2 4] [--out benchmarks/results/gpu-scarce.json]

For each GPU count, a fresh test cluster (tests/harness) whose Node advertises that many
`nvidia.com/gpu`, the operator, and manifests/examples/quickstart.yaml with
`limits: {nvidia.com/gpu: 1}` (parallelism 4: more trials at once than GPUs). Every 0.25 s
it samples the trial pods: GPUs held (pods scheduled and not ended) and pods waiting for a
GPU (Pending, the scheduler short of `nvidia.com/gpu`). Reported per GPU count: wall time
from apply to Succeeded; while a pod waited for a GPU, the share of GPU-time no pod held
(idle) and the share held by pods of trials already parked (on their way out: a reconcile
interval and the stop grace at most); trials parked; and the winner, next to the
winner `lrsweep run` picks for the same spec on this machine's CPU. The trials are the real
built-in trainer on the CPU: what is measured is the sweep's scheduling, not GPU speed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from tests.harness.kubelet import NodeConfig
from tests.harness.pytest_plugin import DEFAULT_IMAGES
from tests.harness.threaded import ThreadedHarness

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "manifests" / "examples" / "quickstart.yaml"
CRD = ROOT / "manifests" / "crd.yaml"
GPU = "nvidia.com/gpu"
NAMESPACE = "default"
SAMPLE_S = 0.25


def gpu_quickstart() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"][GPU] = 1
    return doc


def local_winner(doc: dict[str, Any], work: Path) -> float:
    spec = work / "local.yaml"
    spec.write_text(yaml.safe_dump(doc))
    out = work / "local"
    subprocess.run(
        [sys.executable, "-m", "lrsweep.cli", "run", str(spec), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    rate: float = json.loads((out / "result.json").read_text())["bestLearningRate"]
    return rate


def waits_for_gpu(pod: Any) -> bool:
    if pod.status.phase != "Pending":
        return False
    return any(
        c.type == "PodScheduled" and c.status == "False" and GPU in (c.message or "")
        for c in pod.status.conditions or []
    )


def holds_gpu(pod: Any) -> bool:
    scheduled = any(
        c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions or []
    )
    return scheduled and pod.status.phase in ("Pending", "Running")


def parked(pod: Any, trials: dict[str, Any]) -> bool:
    """The pod's trial is parked, and this is the attempt it was parked in."""
    labels = pod.metadata.labels or {}
    trial = trials.get(labels.get("lrsweep.dev/trial", "")) or {}
    attempt = int(labels.get("lrsweep.dev/attempt", "0"))
    return bool(trial.get("parkedAt")) and attempt == trial.get("attempts")


def one_run(gpus: int, doc: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    state = work / f"harness-{gpus}"
    state.mkdir()
    node = NodeConfig(gpus=gpus)
    with ThreadedHarness(node=node, images=DEFAULT_IMAGES, state_dir=state) as harness:
        kubeconfig = harness.kubeconfig_path
        subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(CRD)],
            check=True,
            capture_output=True,
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "LRSWEEP_NAMESPACES": NAMESPACE,
            "LRSWEEP_METRICS_PORT": "0",
            "LRSWEEP_HEALTH_PORT": "0",
        }
        log = (work / f"operator-{gpus}.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "lrsweep.cli", "operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
            core = client.CoreV1Api(api)
            custom = client.CustomObjectsApi(api)
            started = time.monotonic()
            custom.create_namespaced_custom_object(
                "lrsweep.dev", "v1alpha1", NAMESPACE, "lrsweeps", copy.deepcopy(doc)
            )
            idle_gpu_s = waiting_gpu_s = parked_gpu_s = 0.0
            phase = ""
            sweep: dict[str, Any] = {}
            while time.monotonic() - started < timeout:
                sweep = custom.get_namespaced_custom_object(  # type: ignore[assignment]
                    "lrsweep.dev", "v1alpha1", NAMESPACE, "lrsweeps", doc["metadata"]["name"]
                )
                pods = core.list_namespaced_pod(NAMESPACE).items
                waiting = sum(1 for p in pods if waits_for_gpu(p))
                held = [p for p in pods if holds_gpu(p)]
                if waiting:
                    trials = (sweep.get("status") or {}).get("trials") or {}
                    waiting_gpu_s += gpus * SAMPLE_S
                    idle_gpu_s += max(0, gpus - len(held)) * SAMPLE_S
                    parked_gpu_s += sum(1 for p in held if parked(p, trials)) * SAMPLE_S
                phase = (sweep.get("status") or {}).get("phase", "")
                if phase in ("Succeeded", "Failed"):
                    break
                time.sleep(SAMPLE_S)
            wall = time.monotonic() - started
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            log.close()
    status = sweep.get("status") or {}
    trials = status.get("trials") or {}
    return {
        "gpus": gpus,
        "phase": phase or "Timeout",
        "wall_s": round(wall, 1),
        "gpu_idle_share_while_queued": round(idle_gpu_s / waiting_gpu_s, 3)
        if waiting_gpu_s
        else 0.0,
        "gpu_held_by_parked_share_while_queued": round(parked_gpu_s / waiting_gpu_s, 3)
        if waiting_gpu_s
        else 0.0,
        "trials_parked": sum(1 for t in trials.values() if t.get("resumes") or t.get("parkedAt")),
        "relaunches_after_park": sum(t.get("resumes", 0) for t in trials.values()),
        "winner": status.get("bestLearningRate"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu-scarce.json")
    args = parser.parse_args()
    doc = gpu_quickstart()
    with tempfile.TemporaryDirectory(prefix="lrsweep-gpu-scarce-") as tmp:
        work = Path(tmp)
        local = local_winner(doc, work)
        runs = []
        for gpus in args.gpus:
            run = one_run(gpus, doc, work, args.timeout)
            run["same_winner_as_local"] = run["winner"] == local
            runs.append(run)
            print(json.dumps(run), flush=True)
    args.out.write_text(json.dumps({"local_winner": local, "runs": runs}, indent=1) + "\n")
    print(f"local winner {local:g}; wrote {args.out}")


if __name__ == "__main__":
    main()
