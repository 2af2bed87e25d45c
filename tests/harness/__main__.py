"""`python -m tests.harness --kubeconfig PATH`: serve a test cluster in the foreground.

The kubeconfig is written once the server answers; SIGTERM or SIGINT stops every pod
process and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from pathlib import Path

from tests.harness.containers import ContainerRuntime
from tests.harness.faults import Faults
from tests.harness.images import LRSWEEP_IMAGES
from tests.harness.kubelet import NodeConfig
from tests.harness.server import Harness


def _image(text: str) -> tuple[str, list[str]]:
    name, sep, command = text.partition("=")
    if not sep or not name or not command:
        raise argparse.ArgumentTypeError("expected IMAGE=COMMAND, e.g. trainer='python -m app'")
    return name, shlex.split(command)


def _container(text: str) -> tuple[str, str]:
    name, sep, local = text.partition("=")
    if not sep or not name or not local:
        raise argparse.ArgumentTypeError(
            "expected IMAGE=LOCAL_IMAGE, e.g. lrsweep-trainer=localhost/lrsweep-trainer:local"
        )
    return name, local


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        required=True,
        help="where to write the kubeconfig once the server answers",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cpu", default=NodeConfig.cpu, help="node cpu capacity")
    parser.add_argument("--memory", default=NodeConfig.memory, help="node memory capacity")
    parser.add_argument(
        "--gpus", type=int, default=0, help="node nvidia.com/gpu capacity (and GPU node labels)"
    )
    parser.add_argument(
        "--image",
        type=_image,
        action="append",
        default=[],
        metavar="IMAGE=COMMAND",
        help="entrypoint for containers of IMAGE that give no command (the project's "
        "lrsweep-operator and lrsweep-trainer images have one already)",
    )
    parser.add_argument(
        "--container",
        type=_container,
        action="append",
        default=[],
        metavar="IMAGE=LOCAL_IMAGE",
        help="run the containers of IMAGE as podman containers of LOCAL_IMAGE (`make images` "
        "builds localhost/lrsweep-operator:local and localhost/lrsweep-trainer:local; podman "
        "runs with CONTAINERS_CONF, e.g. tests/images/containers.conf)",
    )
    parser.add_argument("--state-dir", type=Path, help="pod logs and termination messages")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of 500s")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="fraction of 429s")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--watch-timeout", type=float, help="end watch streams after seconds")
    parser.add_argument("--seed", type=int, help="seed for the fault draws")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    if args.state_dir is not None:
        args.state_dir.mkdir(parents=True, exist_ok=True)
    harness = Harness(
        node=NodeConfig(cpu=args.cpu, memory=args.memory, gpus=args.gpus),
        images={**LRSWEEP_IMAGES, **dict(args.image)},
        faults=Faults(
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            latency=args.latency,
            watch_timeout=args.watch_timeout,
            seed=args.seed,
        ),
        state_dir=args.state_dir,
        containers=ContainerRuntime(dict(args.container)) if args.container else None,
        host=args.host,
        port=args.port,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await harness.start()
    try:
        harness.write_kubeconfig(args.kubeconfig)
        print(f"harness: serving {harness.url}; kubeconfig {args.kubeconfig}", flush=True)
        await stopping.wait()
    finally:
        await harness.stop()
    print("harness: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
