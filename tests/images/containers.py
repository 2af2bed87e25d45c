"""Running the built images in tests: podman containers on the host's network, so a
container reaches the test cluster's API server at 127.0.0.1 and its ports are reached
there too."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.images.build import engine_env

_names = itertools.count()


def _podman(
    *args: str, check: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def podman_run(
    image: str,
    *args: str,
    entrypoint: str | None = None,
    env: Mapping[str, str] | None = None,
    volumes: Sequence[tuple[Path, str]] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`podman run --rm` to completion; its exit code, output and error output."""
    options = _options(entrypoint, env, volumes)
    return _podman("run", "--rm", *options, image, *args, timeout=timeout)


def _options(
    entrypoint: str | None, env: Mapping[str, str] | None, volumes: Sequence[tuple[Path, str]]
) -> list[str]:
    options = ["--network", "host"]
    if entrypoint is not None:
        options += ["--entrypoint", entrypoint]
    for name, value in (env or {}).items():
        options += ["--env", f"{name}={value}"]
    for source, target in volumes:
        options += ["--volume", f"{source}:{target}"]
    return options


@dataclass
class Container:
    """A detached container; `remove()` stops it (SIGTERM, then SIGKILL) and deletes it."""

    image: str
    args: Sequence[str] = ()
    entrypoint: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    volumes: Sequence[tuple[Path, str]] = ()
    name: str = field(default_factory=lambda: f"lrsweep-test-{os.getpid()}-{next(_names)}")

    def start(self) -> None:
        options = _options(self.entrypoint, self.env, self.volumes)
        _podman(
            "run", "--detach", "--name", self.name, *options, self.image, *self.args, check=True
        )

    def wait(self, timeout: float) -> int:
        """The exit code, once the container has exited."""
        done = _podman("wait", self.name, timeout=timeout, check=True)
        return int(done.stdout.strip().splitlines()[-1])

    def logs(self) -> str:
        done = _podman("logs", self.name)
        return done.stdout + done.stderr

    def remove(self) -> None:
        _podman("rm", "--force", "--time", "5", self.name)


def writable_file(path: Path, content: str = "") -> Path:
    """A host file the images' non-root user can write through a bind mount."""
    path.write_text(content)
    path.chmod(0o666)
    return path
