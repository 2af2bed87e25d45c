"""Character-level language model: a one-block causal transformer reading 32 characters
and predicting each next one, trained on the prose shipped in `lrsweep_trainer/data`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lrsweep_trainer.tasks.base import Task, TaskData, TaskDefaults, cross_entropy

CONTEXT = 32
# Text is split into blocks; whole blocks go to validation so that no validation window
# overlaps a training window.
BLOCK = 512
VAL_SHARE = 0.15
TRAIN_STRIDE = 8  # overlapping training windows: more distinct examples from little text
WIDTH = 48
HEADS = 4
FEEDFORWARD = 2 * WIDTH  # narrower than the usual 4x: half the cost, about the same loss here
# Installed as package data next to the code (pyproject: package-data `data/*`).
DATA = Path(__file__).resolve().parents[1] / "data"


def corpus() -> str:
    """All shipped texts, in file-name order."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(DATA.glob("*.txt"))]
    if not texts:
        raise FileNotFoundError("no training text found in lrsweep_trainer/data")
    return "\n\n".join(texts)


def _windows(codes: Tensor, stride: int) -> Tensor:
    """Every window of CONTEXT + 1 characters that starts at a multiple of `stride`."""
    if len(codes) < CONTEXT + 1:
        return codes.new_empty((0, CONTEXT + 1))
    return codes.unfold(0, CONTEXT + 1, stride)


def load(seed: int) -> TaskData:
    text = corpus()
    vocabulary = sorted(set(text))
    index = {char: i for i, char in enumerate(vocabulary)}
    codes = torch.tensor([index[char] for char in text], dtype=torch.long)
    blocks = [codes[i : i + BLOCK] for i in range(0, len(codes), BLOCK)]
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed)).tolist()
    val_count = max(1, round(len(blocks) * VAL_SHARE))
    val_blocks = set(order[:val_count])
    train = torch.cat(
        [_windows(b, TRAIN_STRIDE) for i, b in enumerate(blocks) if i not in val_blocks]
    )
    val = torch.cat([_windows(b, CONTEXT) for i, b in enumerate(blocks) if i in val_blocks])
    return TaskData(
        train[:, :-1], train[:, 1:], val[:, :-1], val[:, 1:], num_outputs=len(vocabulary)
    )


class CharTransformer(nn.Module):
    """Embedding + learned positions, one pre-norm causal self-attention block, readout."""

    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, WIDTH)
        self.position = nn.Parameter(torch.zeros(CONTEXT, WIDTH))
        self.block = nn.TransformerEncoderLayer(
            WIDTH,
            HEADS,
            dim_feedforward=FEEDFORWARD,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.norm = nn.LayerNorm(WIDTH)
        self.readout = nn.Linear(WIDTH, vocabulary)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(CONTEXT))

    def forward(self, codes: Tensor) -> Tensor:
        length = codes.shape[1]
        hidden = self.embed(codes) + self.position[:length]
        mask = self.get_buffer("mask")[:length, :length]
        hidden = self.block(hidden, src_mask=mask, is_causal=True)
        return self.readout(self.norm(hidden))  # type: ignore[no-any-return]


def build_model(data: TaskData) -> nn.Module:
    return CharTransformer(data.num_outputs)


CHAR_LM = Task(
    name="char-lm",
    description=f"one-block causal transformer, next character from {CONTEXT}, on shipped prose",
    load=load,
    build_model=build_model,
    loss=cross_entropy,
    classification=True,
    defaults=TaskDefaults(learning_rate=1e-2, optimizer="adam"),
)
