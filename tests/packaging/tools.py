"""The real tools the packaging tests drive, and where they come from.

kubectl and helm: `.tools/bin/` (installed by `.ci/install-tools`), else PATH. prometheus and
promtool: PATH (Debian's `prometheus` package, installed by `.ci/install-tools` as root).
A missing tool fails the test with the command that installs it: these tests are the proof
that the packaging works, so they never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "lrsweep"
MANIFESTS = ROOT / "manifests"
INSTALL = "run `bash .ci/install-tools` (as root for prometheus/promtool), or `make tools`"
# The Kubernetes version the rendered objects are validated against (kubernetes-validate).
KUBE_VERSION = "1.30"


def tool(name: str) -> str:
    """The path of a tool: the project's own copy first, then PATH; fails when absent."""
    local = ROOT / ".tools" / "bin" / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (.tools/bin or PATH): {INSTALL}", pytrace=False)
    return found


def run(command: Sequence[str], *, cwd: Path = ROOT, timeout: float = 120) -> str:
    """Run a tool to completion; a non-zero exit fails the test with the tool's own output."""
    done = subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 (and Kubernetes) do.

    PyYAML follows YAML 1.1, where `1e-05` (no dot) is a string; kustomize writes floats that
    way, and the Kubernetes API reads them as numbers.
    """


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream."""
    return [d for d in yaml.load_all(text, Loader=Yaml12Loader) if d]


def helm_template(
    *args: str, api_versions: Sequence[str] = (), release: str = "lrsweep"
) -> list[dict[str, Any]]:
    """`helm template` of the chart as release `lrsweep` in namespace `lrsweep-system`."""
    command = [tool("helm"), "template", release, str(CHART), "--namespace", "lrsweep-system"]
    command += ["--kube-version", f"{KUBE_VERSION}.0", "--include-crds"]
    for api in api_versions:
        command += ["--api-versions", api]
    return documents(run([*command, *args]))


def kustomize() -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/`: what `kubectl apply -k manifests/` would apply."""
    return documents(run([tool("kubectl"), "kustomize", str(MANIFESTS)]))


def named(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by `namespace/name` (or `name` when cluster-scoped)."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj["kind"] == kind:
            meta = obj["metadata"]
            key = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
            out[key] = obj
    return out


def only(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of a kind."""
    found = list(named(objects, kind).values())
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
