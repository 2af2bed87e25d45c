"""A tiny trainer for end-to-end tests: gradient descent on a quadratic, no torch.

It uses the reporting API like a user's own script would, starts in a fraction of a second,
and misbehaves on request (TOY_BEHAVIOUR) so tests can check how sweeps cope:
  train    descend on 0.5 * w^2 (diverges for rates above 2); like SGD's noise, a higher
           rate settles at a higher floor, so the best rate is the lowest that converges
  crash    exit 1 at once
  garbage  serve garbage on the metrics port, then exit 0 without a summary
  slow     like train, but 50 ms per step (for interrupt tests)
Rates above TOY_CRASH_ABOVE (if set) crash after their first evaluation. With TOY_CHECKPOINT=1
it keeps its state (`Session.resume`) and goes on from it when started again.
"""

from __future__ import annotations

import http.server
import math
import os
import sys
import threading
import time

from lrsweep_trainer import report


def garbage() -> int:
    port = int(os.environ.get("LRSWEEP_METRICS_PORT", "0"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not prometheus {{{</html>\n")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(1.0)
    return 0


def train(delay: float) -> int:
    crash_above = float(os.environ.get("TOY_CRASH_ABOVE", "inf"))
    with report.start(learning_rate=0.1, max_steps=100, eval_every=10) as session:
        w = 5.0
        floor = 0.01 + 0.05 * session.learning_rate
        kept = None
        if os.environ.get("TOY_CHECKPOINT") == "1":
            kept = session.resume(lambda: {"w": w})
        if kept is not None:
            w = float(kept["w"])
        else:
            session.log(0, train_loss=0.5 * w * w + floor, val_loss=0.55 * w * w + floor)
        for step in range(session.start_step + 1, session.max_steps + 1):
            lr = session.lr_at(step)
            w -= lr * w  # the gradient of 0.5 * w^2
            loss = 0.5 * w * w + floor if math.isfinite(w) else math.inf
            if session.log_step(step, loss):
                break
            if session.should_evaluate(step):
                if session.learning_rate > crash_above:
                    print(f"toy: crashing at rate {session.learning_rate}", file=sys.stderr)
                    return 1
                noise = 0.001 * session.seed
                if session.log(step, train_loss=loss, val_loss=1.1 * loss + noise):
                    break
            time.sleep(delay)
    return 0


def main() -> int:
    behaviour = os.environ.get("TOY_BEHAVIOUR", "train")
    if behaviour == "crash":
        print("toy: crashing on purpose", file=sys.stderr)
        return 1
    if behaviour == "garbage":
        return garbage()
    return train(0.05 if behaviour == "slow" else 0.002)


if __name__ == "__main__":
    sys.exit(main())
