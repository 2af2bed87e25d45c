"""A user's own PyTorch training script that reports to LRSweep.

Run it alone (`python trainer/examples/custom_train.py`: it trains with its own settings) or
as a sweep's trial: LRSweep then sets LRSWEEP_LEARNING_RATE and the rest of the contract,
scrapes the metrics this script serves, and reads the summary it writes on exit.

The LRSweep-specific lines are marked with `# lrsweep`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lrsweep_trainer import report  # lrsweep


def make_data(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Two interleaved spirals: 800 training and 200 validation points."""
    generator = torch.Generator().manual_seed(seed)
    count = 1000
    labels = torch.randint(0, 2, (count,), generator=generator)
    radius = torch.rand(count, generator=generator) * 3.0 + 0.2
    angle = radius * 2.5 + labels * torch.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points += 0.1 * torch.randn(points.shape, generator=generator)
    return points[:800], labels[:800], points[800:], labels[800:]


def main() -> None:
    # The keyword arguments are this script's own settings; a sweep's environment wins.
    with report.start(learning_rate=0.05, max_steps=200, eval_every=20) as session:  # lrsweep
        torch.manual_seed(session.seed)
        train_x, train_y, val_x, val_y = make_data(session.seed)
        model = nn.Sequential(
            nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2)
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=session.learning_rate, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(session.seed)

        for step in range(1, session.max_steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = session.lr_at(step)  # lrsweep: the rate for this step
            batch = torch.randint(0, len(train_y), (64,), generator=generator)
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if session.log_step(step, loss.item()):  # lrsweep: per-step loss (range tests)
                break
            if session.should_evaluate(step):  # lrsweep
                with torch.no_grad():
                    train_loss = loss_fn(model(train_x), train_y).item()
                    val_logits = model(val_x)
                    val_loss = loss_fn(val_logits, val_y).item()
                    val_accuracy = (val_logits.argmax(dim=1) == val_y).float().mean().item()
                if session.log(  # lrsweep: True when the trial should stop
                    step, train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy
                ):
                    break


if __name__ == "__main__":
    main()
