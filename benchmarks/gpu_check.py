"""The GPU check: the built-in trainer on CUDA for each task, and a short local sweep on it,
each next to the CPU's speed. Run it wherever a GPU is at hand (`make gpu-check`) and record
the numbers in docs/benchmarks.md with the card's name.

    python -m benchmarks.gpu_check [--steps 600] [--out benchmarks/results/gpu-check.json]

Where CUDA is absent it prints one line saying so and exits 0: nothing here needs a GPU.
Steps per second come from two runs of each task and device, `--steps` and a sixth of it,
so that process start, data loading and CUDA's warm-up cancel out. Where two GPUs exist,
each task also runs on both under torchrun (DDP, one process a GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "manifests" / "examples" / "quickstart.yaml"


def cuda_devices() -> tuple[str | None, int]:
    """The first CUDA device's name (None where there is none), and how many there are."""
    import torch

    if not torch.cuda.is_available():
        return None, 0
    return str(torch.cuda.get_device_name(0)), torch.cuda.device_count()


def timed_run(task: str, device: str, steps: int, processes: int = 1) -> float:
    """Seconds the built-in trainer takes for `steps` steps of `task` on `device`, as one
    process or under torchrun."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                     str(processes)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(
        [
            *launcher, "-m", "lrsweep_trainer", "--task", task, "--device", device,
            "--steps", str(steps), "--eval-every", str(steps), "--metrics-port", "0",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )  # fmt: skip
    return time.perf_counter() - started


def steps_per_second(task: str, device: str, steps: int, processes: int = 1) -> float:
    """The trainer's speed on `task`, start-up excluded (two runs, the difference)."""
    short = max(1, steps // 6)
    seconds = timed_run(task, device, steps, processes) - timed_run(task, device, short, processes)
    return (steps - short) / max(seconds, 1e-9)


def sweep_seconds(device: str, work: Path) -> dict[str, Any]:
    """The quickstart swept locally with its trials on `device`: wall time and winner."""
    doc: dict[str, Any] = yaml.safe_load(QUICKSTART.read_text())
    container = doc["spec"]["trial"]["template"]["spec"]["containers"][0]
    container["args"] = [*container["args"], "--device", device]
    spec = work / f"quickstart-{device}.yaml"
    spec.write_text(yaml.safe_dump(doc))
    out = work / f"out-{device}"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lrsweep.cli", "run", str(spec), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    result = json.loads((out / "result.json").read_text())
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "phase": result["phase"],
        "winner": result.get("bestLearningRate"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="steps of the longer run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu-check.json")
    args = parser.parse_args(argv)
    card, count = cuda_devices()
    if card is None:
        print("gpu-check: skipped: CUDA is not available on this machine (torch sees no GPU)")
        return 0
    from lrsweep_trainer.tasks import TASKS

    tasks = []
    for task in sorted(TASKS):
        cpu = steps_per_second(task, "cpu", args.steps)
        gpu = steps_per_second(task, "cuda", args.steps)
        row = {"task": task, "cpu_steps_per_s": round(cpu, 1), "cuda_steps_per_s": round(gpu, 1)}
        line = f"{task:12s} cpu {cpu:8.1f} steps/s   cuda {gpu:8.1f} steps/s   x{gpu / cpu:.2f}"
        if count >= 2:
            pair = steps_per_second(task, "cuda", args.steps, processes=2)
            row["cuda_2_process_steps_per_s"] = round(pair, 1)
            line += f"   2 GPUs (torchrun) {pair:8.1f} steps/s"
        tasks.append(row)
        print(line)
    if count < 2:
        print(f"2-process runs: skipped: {count} GPU here, torchrun's runs need 2")
    with tempfile.TemporaryDirectory(prefix="lrsweep-gpu-check-") as tmp:
        sweeps = {device: sweep_seconds(device, Path(tmp)) for device in ("cpu", "cuda")}
    for device, sweep in sweeps.items():
        print(f"quickstart sweep on {device}: {sweep['seconds']} s, {sweep['phase']}, "
              f"winner {sweep['winner']}")  # fmt: skip
    args.out.write_text(
        json.dumps({"device": card, "tasks": tasks, "quickstart_sweep": sweeps}, indent=1) + "\n"
    )
    print(f"gpu-check on {card}: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
