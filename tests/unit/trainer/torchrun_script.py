"""A user's script for the torchrun tests: a step is a short sleep and a report.

Each rank writes its pid to RANKS_OUT/pid<rank> before it starts, its last step to
RANKS_OUT/step<rank> at every step, and what it ended with to RANKS_OUT/rank<rank>.json.
RANKS_DIE_AT=N: rank 1 exits (code 3) at step N. RANKS_NAN_AT=N: rank 1 reports a NaN loss
at step N.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lrsweep_trainer import report

out = Path(os.environ["RANKS_OUT"])
rank = int(os.environ["RANK"])
die_at = int(os.environ.get("RANKS_DIE_AT", "0"))
nan_at = int(os.environ.get("RANKS_NAN_AT", "0"))
(out / f"pid{rank}").write_text(str(os.getpid()))

last = 0
with report.start(learning_rate=0.1, max_steps=40, eval_every=1) as session:
    for step in range(1, session.max_steps + 1):
        time.sleep(0.1)
        if rank == 1 and step == die_at:
            os._exit(3)
        loss = float("nan") if rank == 1 and step == nan_at else 1.0 / step
        last = step
        (out / f"step{rank}").write_text(str(step))
        if session.log(step, train_loss=loss, val_loss=loss):
            break
    ended = {"last": last, "port": session.metrics_port, "stop": session.should_stop}
(out / f"rank{rank}.json").write_text(json.dumps(ended))
