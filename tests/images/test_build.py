"""How the image builds are set up (tests/images/build.py), without building anything.

Covers: a machine without podman, runc, debootstrap or root is told what is missing and how
to go on, rather than the image tests passing or skipping unnoticed; the host's pip settings
are read with the PIP_* variables winning over pip's files; the local paths they name are
found for mounting, a file:// index by the directory holding its pages and files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images import build


def test_a_machine_that_cannot_build_is_told_what_is_missing_and_how_to_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build, "which", lambda tool: None if tool == "podman" else tool)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    missing = build.missing_requirements()
    assert [item.split()[0] for item in missing] == ["podman", "root"]
    with pytest.raises(build.ImagesUnavailableError) as raised:
        build.require_engine()
    message = str(raised.value)
    assert all(item in message for item in missing)
    assert ".ci/install-tools" in message
    assert "-m 'not images'" in message


def test_pip_settings_from_the_environment_win_over_pip_files() -> None:
    listed = (
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.constraint='/etc/pip/constraints.txt'\n"
        "global.find-links='/srv/old-wheels'\n"
        ":env:.find-links='/srv/wheels'\n"
    )
    settings = build.parse_pip_config(listed, {"PIP_FIND_LINKS": "/srv/wheels"})
    assert settings == {"cert": "/etc/ssl/certs/ca-certificates.crt", "find-links": "/srv/wheels"}


def test_a_file_index_is_mounted_by_the_directory_holding_its_pages_and_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    settings = {
        "extra-index-url": f"file://{tmp_path}/pypi/simple https://example.org/simple",
        "find-links": str(tmp_path / "wheels"),
    }
    assert build.local_paths(settings) == [tmp_path / "pypi", tmp_path / "wheels"]
