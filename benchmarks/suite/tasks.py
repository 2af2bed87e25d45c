"""The task suite: small training scripts that span what a user's learning-rate search meets.

Each task is a user's training script on the reporting API (`train` is the script's loop,
`python -m benchmarks.suite.tasks NAME` runs it as `lrsweep run` would), small enough that
one full run takes a fraction of a second on a CPU core. Data is bundled with scikit-learn
or generated; nothing is downloaded.

The suite is split before any tuning (`TUNING`, `HELDOUT`): engine changes are judged on
the tuning tasks only; the held-out tasks are measured once, at the end, and reported
apart. Each failure class a user meets appears in both halves, in a different model,
data set or optimizer. `FRESH` is a second held-out set, declared after the first held-out
measurement and before the next round of tuning, so that round is measured on tasks it
never saw. `UNSEEN` is a third, declared after the engine had been judged on all eighteen
tasks above (engine 041ef60), and measured once at that engine before any further change.
`RESERVE` is a fourth, declared right after that measurement and measured once after the
next engine change (09a96c1), which was judged on the other sets. Any further change needs
a set declared before it.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lrsweep_trainer import report

Purpose = Literal["tuning", "heldout", "fresh", "unseen", "reserve"]
Schedule = Callable[[int, int], float]  # (step from 1, steps) -> multiplier of the peak rate
Optimizer = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


@dataclass(frozen=True)
class Data:
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    classes: int  # 0: regression


@dataclass(frozen=True)
class Task:
    name: str
    purpose: Purpose
    about: str
    data: Callable[[], Data]
    model: Callable[[Data], nn.Module]
    optimizer: Optimizer
    schedule: Schedule
    steps: int
    batch: int
    metric: str = "val_loss"
    goal: Literal["minimize", "maximize"] = "minimize"

    @property
    def eval_every(self) -> int:
        return self.steps // 20

    @property
    def min_steps(self) -> int:
        return self.steps // 10

    def criterion(self, data: Data) -> nn.Module:
        return nn.CrossEntropyLoss() if data.classes else nn.MSELoss()


# --- data -------------------------------------------------------------------------------------


def _split(x: Tensor, y: Tensor, classes: int, share: float = 0.25) -> Data:
    """A fixed validation split (the same for every seed), features standardized on train."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    cut = int(len(x) * (1 - share))
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return Data(x[train], y[train], x[val], y[val], classes)


def _from_sklearn(load: Callable[..., tuple[Any, Any]], classes: int) -> Data:
    x, y = load(return_X_y=True)
    features = torch.tensor(x, dtype=torch.float32)
    if classes:
        return _split(features, torch.tensor(y, dtype=torch.long), classes)
    target = torch.tensor(y, dtype=torch.float32)
    target = ((target - target.mean()) / target.std()).unsqueeze(1)
    return _split(features, target, 0)


@functools.cache
def wine() -> Data:
    from sklearn.datasets import load_wine

    return _from_sklearn(load_wine, 3)


@functools.cache
def digits() -> Data:
    from sklearn.datasets import load_digits

    return _from_sklearn(load_digits, 10)


@functools.cache
def digits_small() -> Data:
    """300 training images: a wide network overfits them."""
    full = digits()
    return Data(full.train_x[:300], full.train_y[:300], full.val_x, full.val_y, 10)


@functools.cache
def diabetes() -> Data:
    from sklearn.datasets import load_diabetes

    return _from_sklearn(load_diabetes, 0)


@functools.cache
def breast_cancer() -> Data:
    from sklearn.datasets import load_breast_cancer

    return _from_sklearn(load_breast_cancer, 2)


@functools.cache
def blobs() -> Data:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=900, centers=3, n_features=8, cluster_std=6.0, random_state=7)
    return _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long), 3)


@functools.cache
def classification() -> Data:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=1200, n_features=20, n_informative=10, n_classes=4, random_state=3
    )
    return _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long), 4)


@functools.cache
def noisy_moons() -> Data:
    """Two moons with 15% of the training labels flipped."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=800, noise=0.25, random_state=5)
    data = _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long), 2)
    flip = torch.rand(len(data.train_y), generator=torch.Generator().manual_seed(9)) < 0.15
    return Data(data.train_x, torch.where(flip, 1 - data.train_y, data.train_y), *_val(data))


def _val(data: Data) -> tuple[Tensor, Tensor, int]:
    return data.val_x, data.val_y, data.classes


@functools.cache
def markov_text() -> Data:
    """Next-character prediction on text generated by a fixed random Markov chain over 16
    symbols (context: the previous 4, one-hot)."""
    symbols, context, length = 16, 4, 6000
    g = torch.Generator().manual_seed(11)
    transitions = torch.softmax(3.0 * torch.randn(symbols, symbols, generator=g), dim=1)
    text = [0]
    for _ in range(length - 1):
        text.append(int(torch.multinomial(transitions[text[-1]], 1, generator=g)))
    seq = torch.tensor(text)
    windows = seq.unfold(0, context + 1, 1)
    x = nn.functional.one_hot(windows[:, :context], symbols).flatten(1).float()
    return _split(x, windows[:, context], symbols, share=0.2)


@functools.cache
def friedman() -> Data:
    """Friedman's nonlinear regression problem #1 (5 informative of 10 features), noisy."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=13)
    target = torch.tensor(y, dtype=torch.float32)
    target = ((target - target.mean()) / target.std()).unsqueeze(1)
    return _split(torch.tensor(x, dtype=torch.float32), target, 0)


@functools.cache
def iris() -> Data:
    from sklearn.datasets import load_iris

    return _from_sklearn(load_iris, 3)


@functools.cache
def circles() -> Data:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=800, noise=0.15, factor=0.5, random_state=17)
    return _split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long), 2)


# --- models -----------------------------------------------------------------------------------


def mlp(*widths: int, act: type[nn.Module] = nn.ReLU) -> Callable[[Data], nn.Module]:
    def build(data: Data) -> nn.Module:
        sizes = [data.train_x.shape[1], *widths, data.classes or 1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(act())
        return nn.Sequential(*layers)

    return build


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.body = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(self.norm(x))
        return out


def residual_mlp(data: Data) -> nn.Module:
    width = 48
    return nn.Sequential(
        nn.Linear(data.train_x.shape[1], width),
        _Residual(width),
        _Residual(width),
        nn.LayerNorm(width),
        nn.Linear(width, data.classes),
    )


def batchnorm_mlp(data: Data) -> nn.Module:
    width = 64
    return nn.Sequential(
        nn.Linear(data.train_x.shape[1], width),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, data.classes or 1),
    )


def small_cnn(data: Data) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, data.classes),
    )


# --- optimizers and schedules -----------------------------------------------------------------


def sgd(momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    return lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov)


def adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def adamw(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def rmsprop(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr)


def adagrad(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr)


def constant(step: int, steps: int) -> float:
    return 1.0


def exponential(end: float) -> Schedule:
    """Decays from 1 to `end` over the run."""
    return lambda step, steps: end ** ((step - 1) / max(1, steps - 1))


def step_decay(step: int, steps: int) -> float:
    """x0.1 at half the run and again at three quarters."""
    return 0.1 ** ((step > steps // 2) + (step > 3 * steps // 4))


def warmup_cosine(step: int, steps: int) -> float:
    warm = max(1, steps // 10)
    if step <= warm:
        return step / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def warmup_linear(step: int, steps: int) -> float:
    warm = max(1, steps // 20)
    return step / warm if step <= warm else (steps - step + 1) / (steps - warm + 1)


def one_cycle(step: int, steps: int) -> float:
    """Up from 0.1 to 1 over the first 30%, then down to 0.01."""
    rise = int(0.3 * steps)
    if step <= rise:
        return 0.1 + 0.9 * step / rise
    return 1.0 - 0.99 * (step - rise) / max(1, steps - rise)


# --- the suite --------------------------------------------------------------------------------

TASKS: tuple[Task, ...] = (
    # Tuning: the tasks engine changes may be judged on.
    Task(
        "sgd-plain-wine",
        "tuning",
        "plain SGD (no momentum), exponential decay to 0.05x: a slow learner whose optimum "
        "sits just below the divergence cliff; a short range test says little",
        wine,
        mlp(64, 64),
        sgd(),
        exponential(0.05),
        steps=300,
        batch=16,
    ),
    Task(
        "momentum-tanh-digits",
        "tuning",
        "momentum SGD, step decay, tanh MLP: a broad flat optimum at low rates, far below "
        "where the range test blows up",
        digits,
        mlp(64, act=nn.Tanh),
        sgd(momentum=0.9),
        step_decay,
        steps=300,
        batch=32,
    ),
    Task(
        "adamw-resmlp-digits",
        "tuning",
        "residual MLP with LayerNorm, AdamW, 10% warm-up then cosine",
        digits,
        residual_mlp,
        adamw,
        warmup_cosine,
        steps=300,
        batch=32,
    ),
    Task(
        "adam-blobs",
        "tuning",
        "a newcomer's script: Adam, constant rate, MLP on overlapping synthetic blobs",
        blobs,
        mlp(32),
        adam,
        constant,
        steps=200,
        batch=32,
    ),
    Task(
        "deep-relu-dies",
        "tuning",
        "6-layer ReLU MLP, momentum SGD: large rates kill the units and the loss saturates "
        "near log(classes) instead of blowing up",
        classification,
        mlp(32, 32, 32, 32, 32),
        sgd(momentum=0.9),
        constant,
        steps=300,
        batch=32,
    ),
    Task(
        "accuracy-nesterov-digits",
        "tuning",
        "validation accuracy, maximized; Nesterov SGD with one-cycle on digits",
        digits,
        mlp(48),
        sgd(momentum=0.9, nesterov=True),
        one_cycle,
        steps=240,
        batch=32,
        metric="val_accuracy",
        goal="maximize",
    ),
    # Held out: measured once, at the end.
    Task(
        "sgd-plain-diabetes",
        "heldout",
        "plain SGD, exponential decay to 0.1x, MLP regression (MSE): slow, optimum near the cliff",
        diabetes,
        mlp(32, act=nn.Tanh),
        sgd(),
        exponential(0.1),
        steps=300,
        batch=16,
    ),
    Task(
        "smallbatch-noisy-moons",
        "heldout",
        "batches of 4 with 15% flipped labels, momentum SGD: noisy steps and scores",
        noisy_moons,
        mlp(32, 32),
        sgd(momentum=0.9),
        constant,
        steps=400,
        batch=4,
    ),
    Task(
        "rmsprop-cnn-digits",
        "heldout",
        "small CNN, RMSprop, constant rate",
        digits,
        small_cnn,
        rmsprop,
        constant,
        steps=200,
        batch=32,
    ),
    Task(
        "overfit-step-digits",
        "heldout",
        "wide MLP on 300 training images, Nesterov SGD with step decay: overfits",
        digits_small,
        mlp(256),
        sgd(momentum=0.9, nesterov=True),
        step_decay,
        steps=300,
        batch=32,
    ),
    Task(
        "adam-warmup-markov",
        "heldout",
        "next-symbol prediction on generated Markov text, Adam with warm-up then linear decay",
        markov_text,
        mlp(64),
        adam,
        warmup_linear,
        steps=300,
        batch=32,
    ),
    Task(
        "accuracy-adagrad-cancer",
        "heldout",
        "validation accuracy, maximized; Adagrad on breast-cancer with a dying deep ReLU net",
        breast_cancer,
        mlp(32, 32, 32, 32),
        adagrad,
        constant,
        steps=200,
        batch=16,
        metric="val_accuracy",
        goal="maximize",
    ),
    # Fresh: a second held-out set, declared after the first held-out measurement and before
    # the engine was tuned again; measured once, at the end of that tuning.
    Task(
        "adam-cosine-diabetes",
        "fresh",
        "Adam with 10% warm-up then cosine, MLP regression (MSE) on diabetes",
        diabetes,
        mlp(64, 64),
        adam,
        warmup_cosine,
        steps=300,
        batch=32,
    ),
    Task(
        "sgd-plain-moons",
        "fresh",
        "plain SGD at a constant rate, tanh MLP on noisy moons: a slow learner",
        noisy_moons,
        mlp(32, act=nn.Tanh),
        sgd(),
        constant,
        steps=300,
        batch=16,
    ),
    Task(
        "rmsprop-decay-wine",
        "fresh",
        "RMSprop, exponential decay to 0.1x, two-layer MLP on wine",
        wine,
        mlp(32, 32),
        rmsprop,
        exponential(0.1),
        steps=200,
        batch=16,
    ),
    Task(
        "nesterov-onecycle-cnn",
        "fresh",
        "small CNN on digits, Nesterov SGD with one-cycle",
        digits,
        small_cnn,
        sgd(momentum=0.9, nesterov=True),
        one_cycle,
        steps=200,
        batch=32,
    ),
    Task(
        "accuracy-adamw-step",
        "fresh",
        "validation accuracy, maximized; AdamW with step decay on a synthetic 4-class problem",
        classification,
        mlp(64, 64),
        adamw,
        step_decay,
        steps=240,
        batch=32,
        metric="val_accuracy",
        goal="maximize",
    ),
    Task(
        "deep-tanh-warmup-digits",
        "fresh",
        "5-layer tanh MLP, momentum SGD with warm-up then linear decay, batches of 8",
        digits,
        mlp(32, 32, 32, 32, act=nn.Tanh),
        sgd(momentum=0.9),
        warmup_linear,
        steps=400,
        batch=8,
    ),
    # Unseen: a third held-out set, declared before it was first run (see the module's
    # docstring); measured once.
    Task(
        "momentum-friedman",
        "unseen",
        "momentum SGD at a constant rate, ReLU MLP regression (MSE) on Friedman's noisy problem",
        friedman,
        mlp(64, 64),
        sgd(momentum=0.9),
        constant,
        steps=300,
        batch=32,
    ),
    Task(
        "adam-cosine-iris",
        "unseen",
        "Adam with 10% warm-up then cosine on 112 iris flowers, batches of 8: little, noisy data",
        iris,
        mlp(16),
        adam,
        warmup_cosine,
        steps=200,
        batch=8,
    ),
    Task(
        "nesterov-warmup-circles-deep",
        "unseen",
        "5-layer ReLU MLP, Nesterov SGD with warm-up then cosine, on circles: large rates kill it",
        circles,
        mlp(32, 32, 32, 32),
        sgd(momentum=0.9, nesterov=True),
        warmup_cosine,
        steps=300,
        batch=16,
    ),
    Task(
        "rmsprop-step-markov",
        "unseen",
        "next-symbol prediction on generated Markov text, RMSprop with step decay",
        markov_text,
        mlp(64),
        rmsprop,
        step_decay,
        steps=300,
        batch=32,
    ),
    Task(
        "sgd-plain-logistic-cancer",
        "unseen",
        "plain SGD at a constant rate, logistic regression on breast-cancer: convex; rates "
        "past the optimum make it noisy rather than blow up",
        breast_cancer,
        mlp(),
        sgd(),
        constant,
        steps=200,
        batch=16,
    ),
    Task(
        "accuracy-momentum-cnn-step",
        "unseen",
        "validation accuracy, maximized; small CNN on digits, momentum SGD with step decay, "
        "batches of 16",
        digits,
        small_cnn,
        sgd(momentum=0.9),
        step_decay,
        steps=240,
        batch=16,
        metric="val_accuracy",
        goal="maximize",
    ),
    # Reserve: a fourth held-out set, declared before it was first run (see the module's
    # docstring); measured once.
    Task(
        "momentum-batchnorm-wine",
        "reserve",
        "momentum SGD at a constant rate, MLP with batch norm on wine: tolerates large rates",
        wine,
        batchnorm_mlp,
        sgd(momentum=0.9),
        constant,
        steps=200,
        batch=16,
    ),
    Task(
        "adamw-onecycle-markov",
        "reserve",
        "next-symbol prediction on generated Markov text, AdamW with one-cycle",
        markov_text,
        mlp(64, 64),
        adamw,
        one_cycle,
        steps=300,
        batch=32,
    ),
    Task(
        "adagrad-step-friedman",
        "reserve",
        "Adagrad with step decay, MLP regression (MSE) on Friedman's noisy problem",
        friedman,
        mlp(32, 32),
        adagrad,
        step_decay,
        steps=300,
        batch=32,
    ),
    Task(
        "rmsprop-deep-tanh-iris",
        "reserve",
        "4-layer tanh MLP on iris, RMSprop at a constant rate, batches of 8",
        iris,
        mlp(16, 16, 16),
        rmsprop,
        constant,
        steps=200,
        batch=8,
    ),
    Task(
        "accuracy-adam-moons",
        "reserve",
        "validation accuracy, maximized; Adam with warm-up then linear decay on noisy moons, "
        "batches of 8",
        noisy_moons,
        mlp(32, 32),
        adam,
        warmup_linear,
        steps=300,
        batch=8,
        metric="val_accuracy",
        goal="maximize",
    ),
    Task(
        "sgd-plain-cnn-decay",
        "reserve",
        "small CNN on digits, plain SGD (no momentum) with exponential decay to 0.1x: slow",
        digits,
        small_cnn,
        sgd(),
        exponential(0.1),
        steps=240,
        batch=32,
    ),
)

BY_NAME = {task.name: task for task in TASKS}
TUNING = tuple(task for task in TASKS if task.purpose == "tuning")
HELDOUT = tuple(task for task in TASKS if task.purpose == "heldout")
FRESH = tuple(task for task in TASKS if task.purpose == "fresh")
UNSEEN = tuple(task for task in TASKS if task.purpose == "unseen")
RESERVE = tuple(task for task in TASKS if task.purpose == "reserve")


# --- the training script ----------------------------------------------------------------------


def _batches(data: Data, size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled mini-batches, epoch after epoch, in an order fixed by the generator."""
    while True:
        order = torch.randperm(len(data.train_x), generator=generator)
        for start in range(0, len(order) - size + 1, size):
            index = order[start : start + size]
            yield data.train_x[index], data.train_y[index]


def loader(task: Task, seed: int) -> torch.utils.data.DataLoader[tuple[Tensor, ...]]:
    """The task's training batches as a DataLoader (for tools that want one)."""
    data = task.data()
    dataset = torch.utils.data.TensorDataset(data.train_x, data.train_y)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=task.batch, shuffle=True, drop_last=True, generator=generator
    )


def build(task: Task, seed: int) -> tuple[Data, nn.Module, nn.Module]:
    """The data, the model initialized for `seed`, and the loss."""
    data = task.data()
    torch.manual_seed(seed)
    return data, task.model(data), task.criterion(data)


@torch.no_grad()
def evaluate(data: Data, model: nn.Module, criterion: nn.Module) -> dict[str, float]:
    model.eval()  # batch norm's running statistics, not the validation batch's
    out = model(data.val_x)
    model.train()
    metrics = {"val_loss": float(criterion(out, data.val_y))}
    if data.classes:
        metrics["val_accuracy"] = float((out.argmax(1) == data.val_y).float().mean())
    return metrics


def train(task: Task, session: report.Session, until: int | None = None) -> None:
    """The script's training loop; `until` ends it early (a benchmark reading a prefix)."""
    data, model, criterion = build(task, session.seed)
    optimizer = task.optimizer(model.parameters(), session.learning_rate)
    batches = _batches(data, task.batch, torch.Generator().manual_seed(session.seed))
    last = session.max_steps if until is None else min(until, session.max_steps)
    losses: list[float] = []
    for step in range(1, last + 1):
        for group in optimizer.param_groups:
            group["lr"] = session.lr_at(step)
        x, y = next(batches)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        if session.log_step(step, value):
            return
        losses.append(value)
        if session.should_evaluate(step):
            metrics = evaluate(data, model, criterion)
            if session.log(step, train_loss=sum(losses) / len(losses), **metrics):
                return
            losses.clear()


def start(task: Task, env: dict[str, str] | None = None) -> report.Session:
    """The task's reporting session; its own defaults where the sweep sets nothing."""
    return report.start(
        learning_rate=0.01,
        max_steps=task.steps,
        eval_every=task.eval_every,
        schedule=lambda step: task.schedule(step, task.steps),
        env=env,
        handle_sigterm=env is None,
    )


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in BY_NAME:
        sys.exit(f"usage: python -m benchmarks.suite.tasks TASK, one of: {', '.join(BY_NAME)}")
    task = BY_NAME[argv[0]]
    torch.set_num_threads(1)
    with start(task) as session:
        train(task, session)


if __name__ == "__main__":
    main(sys.argv[1:])
