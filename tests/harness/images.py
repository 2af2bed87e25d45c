"""What the project's images run, for the kubelet stand-in (which pulls no images).

Containers of these images that give no `command` run these entrypoints, the Dockerfile's
`ENTRYPOINT`s as this checkout and virtualenv run them: the operator target's
`lrsweep operator` and the trainer target's `python -m lrsweep_trainer`.
"""

from __future__ import annotations

import sys

from tests.harness.simulated import SIMULATED, SIMULATED_IMAGE

LRSWEEP_IMAGES: dict[str, list[str]] = {
    "lrsweep-operator": [sys.executable, "-m", "lrsweep.cli", "operator"],
    "lrsweep-trainer": [sys.executable, "-m", "lrsweep_trainer"],
    # Run by the kubelet itself, no process: tests/harness/simulated.py.
    SIMULATED_IMAGE: SIMULATED,
}
