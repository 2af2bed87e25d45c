"""The Dockerfile builds two images conventionally (no container engine runs here).

Covers: the `operator` and `trainer` targets exist; both run as a numeric non-root user and
take the wheel from the build stage with COPY (buildah and BuildKit alike), after a layer of
their dependencies alone; the operator stage installs no torch and only the `operator` extra,
starts `lrsweep operator` and exposes the settings' metrics and health ports; the trainer
stage starts on a CUDA-capable PyTorch base explained in a comment, installs the `trainer`
extra, starts the built-in trainer and exposes the default trial metrics port; the Python
base satisfies requires-python; .dockerignore keeps the build context to what COPY needs.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest
from dockerfile_parse import DockerfileParser

from lrsweep.api import TrialTemplate
from lrsweep.settings import OperatorSettings
from tests.packaging.tools import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]


@dataclass
class Parsed:
    args: dict[str, str]
    comments: list[str]
    stages: dict[str, Stage]


def parse() -> Parsed:
    parser = DockerfileParser(path=str(DOCKERFILE))
    args: dict[str, str] = {}
    comments: list[str] = []
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT" and current is None:
            comments.append(value)
        elif instruction == "ARG" and current is None and "=" in value:
            name, default = value.split("=", 1)
            args[name] = default
        elif instruction == "FROM":
            base, name = re.split(r"\s+(?i:as)\s+", value)
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
            current = Stage(name, base)
            stages[name] = current
        elif current is not None and instruction != "COMMENT":
            current.instructions.append((instruction, value))
    return Parsed(args, comments, stages)


@pytest.fixture(scope="module")
def dockerfile() -> Parsed:
    return parse()


def _uid(user: str) -> int:
    return int(user.split(":")[0])


def test_operator_and_trainer_targets_exist(dockerfile: Parsed) -> None:
    assert {"operator", "trainer"} <= set(dockerfile.stages)


@pytest.mark.parametrize("target", ["operator", "trainer"])
def test_target_runs_as_a_numeric_non_root_user(dockerfile: Parsed, target: str) -> None:
    users = dockerfile.stages[target].values("USER")
    assert users, f"{target} has no USER"
    assert users[-1].split(":")[0].isdigit(), "runAsNonRoot can only verify a numeric user"
    assert _uid(users[-1]) != 0


def test_operator_stage_installs_the_operator_extra_and_no_torch(dockerfile: Parsed) -> None:
    operator = dockerfile.stages["operator"]
    for instruction, value in operator.instructions:
        assert "torch" not in value.lower(), f"{instruction} {value}"
    installs = [v for v in operator.values("RUN") if "pip install" in v]
    assert installs
    extras = {e for v in installs for e in re.findall(r"\[([\w,]+)\]", v)}
    assert extras == {"operator"}, "the operator installs the core and its own extra only"


def test_pyproject_core_dependencies_exclude_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("torch")]


def test_operator_starts_the_operator_on_the_settings_ports(dockerfile: Parsed) -> None:
    operator = dockerfile.stages["operator"]
    assert json.loads(operator.values("ENTRYPOINT")[-1]) == ["lrsweep", "operator"]
    settings = OperatorSettings()
    exposed = {int(p) for v in operator.values("EXPOSE") for p in v.split()}
    assert exposed == {settings.metrics_port, settings.health_port}


def test_operator_base_is_a_slim_python_that_satisfies_requires_python(
    dockerfile: Parsed,
) -> None:
    base = dockerfile.stages["operator"].base
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", base)
    assert match, base
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    assert (int(match.group(1)), int(match.group(2))) >= minimum


def test_trainer_base_is_cuda_capable_and_explained(dockerfile: Parsed) -> None:
    base = dockerfile.stages["trainer"].base
    assert "cuda" in base, base
    explained = " ".join(dockerfile.comments)
    assert "CUDA" in explained
    assert "runtime" in explained


def test_trainer_installs_the_trainer_extra_and_starts_the_trainer(dockerfile: Parsed) -> None:
    trainer = dockerfile.stages["trainer"]
    assert any("[trainer]" in v for v in trainer.values("RUN"))
    assert json.loads(trainer.values("ENTRYPOINT")[-1]) == ["python", "-m", "lrsweep_trainer"]
    default_port = TrialTemplate.model_fields["metricsPort"].default
    assert trainer.values("EXPOSE") == [str(default_port)]


def test_dockerignore_keeps_only_what_copy_needs(dockerfile: Parsed) -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then re-include"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in dockerfile.stages.values()
        for value in stage.values("COPY")
        if not value.startswith("--from")
        for source in value.split()[:-1]
    }
    assert copied <= included
    assert copied == included, "re-include nothing that no COPY uses"


def test_the_repository_has_the_license_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


@pytest.mark.parametrize("target", ["operator", "trainer"])
def test_target_takes_the_wheel_from_the_build_stage_with_copy(
    dockerfile: Parsed, target: str
) -> None:
    """COPY --from, which BuildKit and buildah both take from the built stage; buildah (podman
    build) up to 1.28 bind-mounts a stage that came from its layer cache empty for a
    `RUN --mount=type=bind,from=build`."""
    stage = dockerfile.stages[target]
    assert "--from=build /wheels /wheels" in stage.values("COPY")
    assert not any("from=" in v for v in stage.values("RUN") if "--mount" in v)


@pytest.mark.parametrize("target", ["operator", "trainer"])
def test_target_installs_its_dependencies_before_the_wheel(dockerfile: Parsed, target: str) -> None:
    """A layer of the dependencies alone, from requirements the build stage reads from
    pyproject.toml: a change of the code rebuilds only the wheel's layers."""
    copies = dockerfile.stages[target].values("COPY")
    requirements = copies.index(f"--from=build /deps/{target}.txt /tmp/requirements.txt")
    assert requirements < copies.index("--from=build /wheels /wheels")
