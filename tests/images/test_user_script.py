"""A user's own training script on top of the trainer image (README, "Your own training
script"): an image `FROM lrsweep-trainer` that adds the script, run with `command: [python,
train.py]` as a sweep's template gives it.

Covers: the image builds from the trainer image alone (the reporting API and torch are
there); the script's trial trains under the contract's environment, exits 0 and leaves its
summary at the termination path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.images.build import ROOT, Images, podman
from tests.images.containers import podman_run, writable_file

pytestmark = pytest.mark.images

SCRIPT = ROOT / "trainer" / "examples" / "custom_train.py"
USER_IMAGE = "localhost/lrsweep-user-script:test"


@pytest.fixture(scope="module")
def user_image(lrsweep_images: Images, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("user-image")
    shutil.copy(SCRIPT, context / "train.py")
    (context / "Containerfile").write_text(
        f"FROM {lrsweep_images.trainer.name}\nWORKDIR /app\nCOPY train.py .\n"
    )
    podman("build", "--tag", USER_IMAGE, str(context))
    return USER_IMAGE


def test_its_trial_runs_and_writes_its_summary(user_image: str, tmp_path: Path) -> None:
    termination = writable_file(tmp_path / "termination-log")
    done = podman_run(
        user_image,
        "train.py",
        entrypoint="python",
        env={
            "LRSWEEP_LEARNING_RATE": "0.1",
            "LRSWEEP_MAX_STEPS": "40",
            "LRSWEEP_EVAL_EVERY": "20",
            "LRSWEEP_TRIAL": "t007",
        },
        volumes=[(termination, "/dev/termination-log")],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(termination.read_text())
    assert summary["trial"] == "t007"
    assert summary["status"] == "finished"
    assert summary["step"] == 40
    assert summary["learningRate"] == 0.1
