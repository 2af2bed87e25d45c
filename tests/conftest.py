"""Shared pytest setup: the test cluster's fixtures (tests/harness/pytest_plugin.py), and
which tests share a worker when the suite runs in parallel (`make test`: `pytest -n 2
--dist loadgroup`)."""

from __future__ import annotations

import json
import time

import pytest

from tests.images.build import REPORT as IMAGES_REPORT

pytest_plugins = ["tests.harness.pytest_plugin"]

# Fixtures that run trial processes (session ones: minutes of torch training): every test
# that uses one runs on the same xdist worker, so that each is built once, not once per
# worker.
SHARED_FIXTURES = {
    "quick_benchmark": "quick-benchmark",  # tests/benchmarks/conftest.py
    "local_quickstart": "local-quickstart",  # tests/e2e/conftest.py
    "local_multi_gpu": "local-quickstart",  # tests/e2e/conftest.py: compared with the above
    "benchmarked": "benchmark-command",  # tests/e2e/test_benchmark_command.py (module)
    "numerics_runs": "numerics-runs",  # tests/unit/trainer/test_numerics.py (module)
    "lrsweep_images": "images",  # tests/images/conftest.py: podman builds, containers
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in fixtures:
                item.add_marker(pytest.mark.xdist_group(group))
                break


def pytest_runtest_setup(item: pytest.Item) -> None:
    """On an xdist worker with --dist loadgroup, fail a grouped test that xdist did not group
    (it tags their node ids `@group`): each worker would build the fixture again, unnoticed."""
    grouping = getattr(item.config.option, "loadgroup", False)
    if grouping and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist did not group this test (--dist loadgroup): this pytest and "
            "pytest-xdist do not work together (pytest-dev/pytest-xdist#1386); install the "
            "versions pyproject.toml asks for, or run without -n",
            pytrace=False,
        )


SESSION_START = pytest.StashKey[float]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SESSION_START] = time.time()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The images' sizes and build times, where this session's image tests built them."""
    if IMAGES_REPORT.exists() and IMAGES_REPORT.stat().st_mtime >= config.stash[SESSION_START]:
        terminalreporter.write_sep("-", "lrsweep images")
        terminalreporter.write_line(json.loads(IMAGES_REPORT.read_text())["table"])
