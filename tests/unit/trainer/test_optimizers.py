"""Optimizers from parameter groups.

Covers: SGD's default momentum 0.9 and optional Nesterov; Adam without and AdamW with
default weight decay; per-group rate scales applied at construction and on every rate
change; invalid combinations; unknown names list the known ones.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrsweep_trainer.optimizers import (
    OptimizerConfig,
    ParamGroup,
    build_optimizer,
    param_groups,
    parse_optimizer,
    set_learning_rate,
)


def model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_sgd_uses_momentum_09_by_default() -> None:
    optimizer = build_optimizer(param_groups(model()), OptimizerConfig("sgd"), 0.1)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, False)


def test_sgd_can_use_nesterov_momentum() -> None:
    config = OptimizerConfig("sgd", momentum=0.8, nesterov=True)
    group = build_optimizer(param_groups(model()), config, 0.1).param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.8, True)


def test_adam_has_no_weight_decay_and_adamw_a_decoupled_one_by_default() -> None:
    adam = build_optimizer(param_groups(model()), OptimizerConfig("adam"), 1e-3)
    adamw = build_optimizer(param_groups(model()), OptimizerConfig("adamw"), 1e-3)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["weight_decay"] == 0.0
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["weight_decay"] == 0.01


def test_explicit_weight_decay_is_used() -> None:
    config = OptimizerConfig("sgd", weight_decay=5e-4)
    assert (
        build_optimizer(param_groups(model()), config, 0.1).param_groups[0]["weight_decay"] == 5e-4
    )


def test_param_groups_hold_every_trainable_parameter_at_scale_one() -> None:
    net = model()
    groups = param_groups(net)
    assert len(groups) == 1
    assert groups[0]["lr_scale"] == 1.0
    assert len(groups[0]["params"]) == len(list(net.parameters()))


def test_group_scales_apply_at_construction_and_on_rate_changes() -> None:
    net = model()
    groups: list[ParamGroup] = [
        {"params": list(net[0].parameters()), "lr_scale": 0.1},
        {"params": list(net[2].parameters())},
    ]
    optimizer = build_optimizer(groups, OptimizerConfig("adam"), 1e-2)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 1e-2])
    set_learning_rate(optimizer, 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.5])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "adam", "nesterov": True}, "nesterov"),
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -0.1}, "weight decay"),
    ],
)
def test_invalid_configurations_are_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptimizerConfig(**config)  # type: ignore[arg-type]


def test_unknown_optimizer_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="sgd, adam, adamw"):
        parse_optimizer("lamb")
