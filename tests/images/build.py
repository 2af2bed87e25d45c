"""Build the project's two images with podman, without a registry (`make images`).

No registry is reachable from CI, so the Dockerfile's bases are made here: a Debian bookworm
root (debootstrap, `python3` as `python` with pip: what `python:3.11-slim-bookworm` offers)
imported with `podman import`, and a torch base on top of it with the machine's CPU torch.
Both are kept in podman's storage and reused while their recipe stays the same; the two
Dockerfile targets are then built from the unchanged Dockerfile, only `PYTHON_IMAGE` and
`TRAINER_IMAGE` differing, with podman's layer cache.

What the host needs to reach its package index is passed to builds, never written into an
image: the host's CA bundle is mounted over the base's own for each `RUN` (package traffic
may go through a TLS-inspecting proxy), and the torch base's pip gets the host's pip settings
(its find-links hold the CPU torch wheel) as build arguments of a Containerfile of its own.

Needs root, podman with runc, and debootstrap (`.ci/install-tools` installs them as root).

    python -m tests.images.build     # build, print names, sizes and times
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# runc, no default ulimits: crun cannot run on hybrid cgroups, and setting RLIMIT_NPROC in a
# container is refused on the CI machines' kernels.
CONTAINERS_CONF = HERE / "containers.conf"
REPORT = ROOT / "out" / "images.json"

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
PYTHON_BASE = f"localhost/lrsweep-base-python:{SUITE}"
# The torch of this virtualenv (the Makefile's pin; its CPU build on CI machines).
TORCH_VERSION = metadata.version("torch")
TORCH_REQUIREMENT = f"torch=={TORCH_VERSION}"
TORCH_BASE = f"localhost/lrsweep-base-torch:{TORCH_VERSION.replace('+', '-')}"
TAG = "local"
OPERATOR_IMAGE = f"localhost/lrsweep-operator:{TAG}"
TRAINER_IMAGE = f"localhost/lrsweep-trainer:{TAG}"
RECIPE_LABEL = "org.lrsweep.recipe"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Where Debian's ca-certificates (and so Debian's pip) keeps the bundle in the bases.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# After debootstrap: the apt lists and packages, docs and locales go (a slim image keeps
# none of them); pip may install into the system Python (the official python images' pip
# does too); `python` names python3.
SLIM_ROOT = """
set -eu
rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* \
    usr/share/locale/*
rm -f usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf python3 usr/bin/python
"""
TORCH_CONTAINERFILE = """\
ARG BASE
FROM ${{BASE}}
{pip_args}
RUN pip install --no-cache-dir --disable-pip-version-check "{torch}"
"""
# Host pip settings the torch base's pip gets (as PIP_* build arguments).
PIP_SETTINGS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert")


class ImagesUnavailableError(RuntimeError):
    """This machine cannot build the images (no root, no podman, runc or debootstrap)."""


@dataclass(frozen=True)
class Built:
    name: str
    size_bytes: int
    seconds: float
    reused: bool


@dataclass(frozen=True)
class Images:
    operator: Built
    trainer: Built
    bases: tuple[Built, ...]

    def report(self) -> str:
        rows = [*self.bases, self.operator, self.trainer]
        width = max(len(b.name) for b in rows)
        lines = [
            f"{b.name:<{width}}  {b.size_bytes / 1e6:7.0f} MB  "
            + ("reused" if b.reused else f"built in {b.seconds:.0f} s")
            for b in rows
        ]
        return "\n".join(lines)


def which(tool: str) -> str | None:
    """The tool's path; sbin counts (debootstrap is there, off a user's PATH)."""
    return shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def missing_requirements() -> list[str]:
    """What this machine lacks to build the images; empty when it can."""
    missing = [
        f"{tool} (not on PATH)" for tool in ("podman", "runc", "debootstrap") if not which(tool)
    ]
    if os.geteuid() != 0:
        missing.append("root (debootstrap and podman's runc runtime run as root here)")
    return missing


def require_engine() -> None:
    missing = missing_requirements()
    if missing:
        raise ImagesUnavailableError(
            "cannot build the lrsweep images: missing "
            + ", ".join(missing)
            + ". Run `.ci/install-tools` as root (it installs podman, runc and debootstrap), "
            "or leave the image tests out with `pytest -m 'not images'` (docs/deploy.md)."
        )


def engine_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str) -> str:
    """Run podman with the suite's containers.conf; its output. Fails with the end of its
    error output."""
    result = subprocess.run(
        ["podman", *args], env=engine_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = result.stderr[-4000:]
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {detail}")
    return result.stdout


def image_label(name: str, label: str) -> str | None:
    """The image's label, or None when the image (or the label) is absent."""
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', name],
        env=engine_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    value = result.stdout.strip()
    return value if result.returncode == 0 and value not in ("", "<no value>") else None


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).strip())


def recipe(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def ca_mount() -> list[str]:
    """The host's CA bundle over the image's, for every RUN of a build (not kept in it)."""
    return ["--volume", f"{HOST_CA_BUNDLE}:{IMAGE_CA_BUNDLE}:ro"] if HOST_CA_BUNDLE.exists() else []


def host_pip_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host's effective pip settings named in PIP_SETTINGS (PIP_* variables over files)."""
    env = os.environ if env is None else env
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(env),
    ).stdout
    return parse_pip_config(listed, env)


def parse_pip_config(listed: str, env: Mapping[str, str]) -> dict[str, str]:
    """`pip config list` lines (`global.cert='/path'`), the PIP_* variables winning."""
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        key, sep, quoted = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if sep and name in PIP_SETTINGS and not key.startswith(":env:"):
            settings[name] = str(ast.literal_eval(quoted))
    for name in PIP_SETTINGS:
        value = env.get(pip_variable(name))
        if value:
            settings[name] = value
    return settings


def pip_variable(setting: str) -> str:
    return "PIP_" + setting.upper().replace("-", "_")


def local_paths(settings: Mapping[str, str]) -> list[Path]:
    """The host files and directories the settings name: plain paths, and for a file://
    index (`.../simple`) its parent, which holds the files its pages link to."""
    paths: list[Path] = []
    for value in settings.values():
        for item in value.split():
            path = Path(item.removeprefix("file://"))
            if item.startswith("file://"):
                path = path.parent
            if path.is_absolute() and path.exists() and path not in paths:
                paths.append(path)
    return paths


def make_python_base() -> Built:
    key = recipe(SUITE, *PACKAGES, SLIM_ROOT)
    if image_label(PYTHON_BASE, RECIPE_LABEL) == key:
        return Built(PYTHON_BASE, image_size(PYTHON_BASE), 0.0, reused=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lrsweep-base-", dir="/var/tmp") as work:
        root = Path(work) / "root"
        debootstrap = which("debootstrap") or "debootstrap"
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=" + ",".join(PACKAGES),
                SUITE,
                str(root),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["sh", "-c", SLIM_ROOT], cwd=root, check=True)
        archive = Path(work) / "root.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."], check=True
        )
        podman(
            "import",
            "--change",
            'CMD ["python3"]',
            "--change",
            f"LABEL {RECIPE_LABEL}={key}",
            str(archive),
            PYTHON_BASE,
        )
    return Built(PYTHON_BASE, image_size(PYTHON_BASE), time.monotonic() - started, False)


def make_torch_base(python_base_id: str) -> Built:
    key = recipe(python_base_id, TORCH_REQUIREMENT, TORCH_CONTAINERFILE)
    if image_label(TORCH_BASE, RECIPE_LABEL) == key:
        return Built(TORCH_BASE, image_size(TORCH_BASE), 0.0, reused=True)
    started = time.monotonic()
    settings = host_pip_settings()
    # Declared for this build only: build arguments reach RUN, not the image's environment.
    declared = "\n".join(f"ARG {pip_variable(name)}" for name in settings)
    # The CA bundle is mounted once (ca_mount), at the path the base keeps its own.
    mounts = [
        arg
        for path in local_paths(settings)
        if not (path == HOST_CA_BUNDLE and str(path) == IMAGE_CA_BUNDLE)
        for arg in ("--volume", f"{path}:{path}:ro")
    ]
    pip_args = [
        arg
        for name, value in settings.items()
        for arg in ("--build-arg", f"{pip_variable(name)}={value}")
    ]
    with tempfile.TemporaryDirectory(prefix="lrsweep-torch-") as context:
        containerfile = Path(context) / "Containerfile"
        containerfile.write_text(
            TORCH_CONTAINERFILE.format(pip_args=declared, torch=TORCH_REQUIREMENT)
        )
        podman(
            "build",
            "--network",
            "host",
            *ca_mount(),
            *mounts,
            *pip_args,
            "--build-arg",
            f"BASE={PYTHON_BASE}",
            "--label",
            f"{RECIPE_LABEL}={key}",
            "--tag",
            TORCH_BASE,
            "--file",
            str(containerfile),
            context,
        )
    return Built(TORCH_BASE, image_size(TORCH_BASE), time.monotonic() - started, False)


def build_target(target: str, name: str) -> Built:
    """One Dockerfile target on the local bases; podman's layer cache makes a rebuild of an
    unchanged tree take seconds."""
    started = time.monotonic()
    podman(
        "build",
        "--network",
        "host",
        *ca_mount(),
        "--build-arg",
        f"PYTHON_IMAGE={PYTHON_BASE}",
        "--build-arg",
        f"TRAINER_IMAGE={TORCH_BASE}",
        "--target",
        target,
        "--tag",
        name,
        str(ROOT),
    )
    return Built(name, image_size(name), time.monotonic() - started, reused=False)


def image_id(name: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", name).strip()


def build_all() -> Images:
    require_engine()
    python_base = make_python_base()
    torch_base = make_torch_base(image_id(PYTHON_BASE))
    images = Images(
        operator=build_target("operator", OPERATOR_IMAGE),
        trainer=build_target("trainer", TRAINER_IMAGE),
        bases=(python_base, torch_base),
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({**asdict(images), "table": images.report()}, indent=2) + "\n")
    return images


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    try:
        images = build_all()
    except ImagesUnavailableError as err:
        print(f"images: {err}", file=sys.stderr)
        return 1
    print(images.report())
    print(f"images: recorded in {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
