"""The MLP and its initializations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from backward_lib import models


def _linears(net):
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def test_architecture():
    net = models.mlp(784, 10, depth=3, width=50, activation="tanh")
    lin = _linears(net)
    assert [(m.in_features, m.out_features) for m in lin] == [(784, 50), (50, 50), (50, 50), (50, 10)]
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 3
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # images are flattened


def test_same_seed_same_weights_and_different_seed_differs():
    a, b, c = (models.mlp(20, 3, 2, 64, seed=s) for s in (5, 5, 6))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(_linears(a)[0].weight, _linears(c)[0].weight)


@pytest.mark.parametrize(("init", "gain"), [("he", 2.0), ("lecun", 1.0)])
def test_init_scale(init, gain):
    net = models.mlp(400, 10, depth=2, width=400, init=init, seed=0)
    for m in _linears(net):
        assert torch.equal(m.bias, torch.zeros_like(m.bias))
        expected = math.sqrt(gain / m.in_features)
        assert float(m.weight.detach().std()) == pytest.approx(expected, rel=0.05)


def test_torch_init_keeps_pytorch_default():
    net = models.mlp(400, 10, depth=1, width=300, init="torch", seed=0)
    w = _linears(net)[0].weight
    bound = 1 / math.sqrt(400)
    assert float(w.detach().abs().max()) <= bound and float(w.detach().std()) == pytest.approx(
        bound / math.sqrt(3), rel=0.05
    )
    assert float(_linears(net)[0].bias.detach().abs().max()) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth"),
        ({"width": -1}, "width"),
        ({"init": "xavier"}, "init"),
        ({"activation": "gelu"}, "activation"),
    ],
)
def test_bad_model_settings(kwargs, match):
    args = {"in_dim": 4, "out_dim": 2, "depth": 1, "width": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        models.mlp(**args)
