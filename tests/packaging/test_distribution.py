"""What installing the `lrsweep` distribution pulls, read from the wheel it builds.

Covers: the core (no extra) requires neither kopf, kubernetes, aiohttp nor torch, and the
`operator` extra brings the Kubernetes clients; the reporting API runs a trial to its
summary in a process where kopf, kubernetes, aiohttp, torch and matplotlib cannot be
imported; a command whose extra is missing says which to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.packaging.tools import ROOT

OPERATOR_PACKAGES = {"kopf", "kubernetes", "aiohttp"}
# Makes these modules unimportable in the process that runs it (None in sys.modules).
WITHOUT = "import sys\nfor name in {names!r}: sys.modules[name] = None\n"


def requirements(wheel: Path) -> list[tuple[str, str]]:
    """(project name, marker) of each Requires-Dist of the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    found = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        project = spec.strip().split("[")[0]
        for operator in "<>=!~ ":
            project = project.split(operator)[0]
        found.append((project.lower(), marker.strip()))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds, from a copy of the sources (no build/ in the tree)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for tree in ("operator", "trainer"):
        shutil.copytree(ROOT / tree, source / tree, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True,
        timeout=300,
    )  # fmt: skip
    return next(out.glob("lrsweep-*.whl"))


def test_the_core_requires_neither_the_kubernetes_clients_nor_torch(wheel: Path) -> None:
    core = {project for project, marker in requirements(wheel) if not marker}
    assert core
    assert not core & (OPERATOR_PACKAGES | {"torch"}), core


def test_the_operator_extra_brings_the_kubernetes_clients(wheel: Path) -> None:
    operator = {p for p, marker in requirements(wheel) if marker == 'extra == "operator"'}
    assert operator >= OPERATOR_PACKAGES


def test_the_reporting_api_runs_a_trial_without_the_operators_packages(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "summary.json"
    script = WITHOUT.format(names=[*OPERATOR_PACKAGES, "torch", "matplotlib"]) + (
        "from lrsweep_trainer import report\n"
        f"env = {{'LRSWEEP_LEARNING_RATE': '0.1', 'LRSWEEP_TERMINATION_PATH': {str(summary)!r}}}\n"
        "with report.start(max_steps=2, env=env) as session:\n"
        "    session.log(2, train_loss=0.5, val_loss=0.6)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(summary.read_text())["status"] == "finished"


def test_the_operator_command_without_its_extra_says_what_to_install() -> None:
    script = WITHOUT.format(names=sorted(OPERATOR_PACKAGES)) + (
        "from lrsweep.cli import main\nsys.exit(main(['operator']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'lrsweep[operator]'" in done.stderr
