"""Shared pytest setup: the test cluster's fixtures (tests/harness/pytest_plugin.py)."""

pytest_plugins = ["tests.harness.pytest_plugin"]
