"""The images under test: both Dockerfile targets, built once per session (tests/images/build.py;
podman's storage keeps the bases and layers between sessions)."""

from __future__ import annotations

import pytest

from tests.images.build import Images, ImagesUnavailableError, build_all


@pytest.fixture(scope="session")
def lrsweep_images() -> Images:
    """Fails, rather than skips, where the images cannot be built: a suite that passes
    without them would say nothing about the images users run."""
    try:
        return build_all()
    except ImagesUnavailableError as err:
        pytest.fail(str(err), pytrace=False)
