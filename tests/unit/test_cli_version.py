"""`lrsweep --version` and `lrsweep version`.

Covers: `--version` prints the installed package's version and exits 0, with no command;
the `version` command prints the same.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from lrsweep.cli import EXIT_OK, main


def test_the_version_flag_prints_the_package_version_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == EXIT_OK
    assert capsys.readouterr().out == metadata.version("lrsweep") + "\n"


def test_the_version_command_prints_what_the_flag_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["version"]) == EXIT_OK
    assert capsys.readouterr().out == metadata.version("lrsweep") + "\n"
