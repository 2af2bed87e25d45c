"""A user's training script for the `lrsweep benchmark` tests: SGD on a noisy quadratic, no
torch.

Curvatures 1 to 10 make rates above 0.2 diverge and small ones converge slowly; the
gradient noise makes a rate just below the edge worse than a moderate one. So the final
loss has one clear optimum in between, and a trial starts in a fraction of a second.
"""

from __future__ import annotations

import random

from lrsweep_trainer import report

CURVATURES = (1.0, 2.0, 5.0, 10.0)
NOISE = 0.3


def main() -> None:
    with report.start(learning_rate=0.05, max_steps=60, eval_every=6) as session:
        rng = random.Random(session.seed)
        weights = [rng.uniform(1.0, 2.0) for _ in CURVATURES]
        for step in range(1, session.max_steps + 1):
            lr = session.lr_at(step)
            pairs = zip(weights, CURVATURES, strict=True)
            weights = [w - lr * (c * w + rng.gauss(0.0, NOISE)) for w, c in pairs]
            loss = sum(0.5 * c * w * w for w, c in zip(weights, CURVATURES, strict=True))
            if session.log_step(step, loss):
                break
            if session.should_evaluate(step) and session.log(step, val_loss=loss):
                break


if __name__ == "__main__":
    main()
