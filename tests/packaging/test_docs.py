"""The deployment and benchmark docs point at things that exist.

Covers: every repository path docs/deploy.md and the README's install section name exists;
the README's install section links docs/deploy.md; every chart value in the docs' table is
a value of values.yaml with the default the table states; the metrics Service address in the
docs' scrape configuration is the one the chart renders for release `lrsweep`; every
benchmark command and result file the README and docs/benchmarks.md name exists, and the
README links docs/benchmarks.md.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.packaging.tools import CHART, ROOT, helm_template, only

DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text()
README = (ROOT / "README.md").read_text()
INSTALL_SECTION = README[README.index("## Install on a cluster") :].split("\n## ")[0]
PATH = re.compile(r"\b((?:charts|manifests|docs|operator)/[\w./-]+\.(?:ya?ml|json|md|py))\b")


@pytest.mark.parametrize(("name", "text"), [("deploy.md", DEPLOY), ("README", INSTALL_SECTION)])
def test_every_path_the_docs_name_exists(name: str, text: str) -> None:
    paths = set(PATH.findall(text))
    assert paths
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_the_readme_links_the_deployment_guide() -> None:
    assert "(docs/deploy.md)" in INSTALL_SECTION


@pytest.mark.parametrize("text", [BENCHMARKS, README], ids=["benchmarks.md", "README"])
def test_every_benchmark_command_and_result_the_docs_name_exists(text: str) -> None:
    modules = set(re.findall(r"python -m benchmarks\.(\w+)", text))
    results = set(re.findall(r"\b(benchmarks/results/[\w./-]*\w)", text))
    assert modules
    assert results

    def runnable(module: str) -> bool:
        package = ROOT / "benchmarks" / module / "__main__.py"
        return (ROOT / "benchmarks" / f"{module}.py").exists() or package.exists()

    assert [m for m in modules if not runnable(m)] == []
    assert [r for r in results if not (ROOT / r).exists()] == []


def test_the_readme_links_the_benchmark_docs() -> None:
    assert "(docs/benchmarks.md)" in README


def _value(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        node = node[key]
    return node


def test_the_values_table_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    start = DEPLOY.index("| value | default | meaning |")
    table = DEPLOY[start : DEPLOY.index("\n\n", start)]
    rows = re.findall(r"^\| `([\w.]+)` \| `([^`]*)`", table, flags=re.MULTILINE)
    assert len(rows) >= 6
    for key, default in rows:
        assert _value(values, key) == yaml.safe_load(default), key


def test_the_scrape_example_names_the_rendered_metrics_service() -> None:
    service = only(helm_template(), "Service")
    address = f"{service['metadata']['name']}.lrsweep-system:{service['spec']['ports'][0]['port']}"
    assert address in DEPLOY
