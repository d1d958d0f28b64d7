"""Realizations stacked in one tensor: each row is the run ``maps.network`` makes alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import backward_lib as bl
from backward_lib import ensemble, maps, orders


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def test_rows_are_independent_runs_of_the_real_sgd_map():
    net = _net()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    w0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    batches = ensemble.iid_batches(20, 4, realizations=3, seed=7)
    T = ensemble.sgd(ensemble.mlp_losses(net, names, shapes, x, y), 0.1, batches)
    W = bl.iterate(T, w0.expand(3, -1).clone(), orders.backward(), [6])[6]
    for r in range(3):
        sched = torch.stack([batches(n)[r] for n in range(1, 7)])
        Tr = maps.network(net, nn.functional.mse_loss, maps.sgd(0.1), x, y, sched)
        theta = bl.iterate(Tr, maps.params_of(net), orders.backward(), [6])[6]
        flat = torch.cat([theta[k].reshape(-1) for k in names])
        torch.testing.assert_close(W[r], flat, rtol=0, atol=1e-12)
    assert not torch.equal(W[0], W[1])  # different batches, different runs


def test_iid_batches_are_seeded_subsets():
    b = ensemble.iid_batches(10, 4, realizations=5, seed=1)
    first = b(1)
    assert first.shape == (5, 4) and all(len(set(row.tolist())) == 4 for row in first)
    assert torch.equal(first, b(1)) and not torch.equal(first, b(2))
    with pytest.raises(ValueError, match="batch"):
        ensemble.iid_batches(3, 4, 1, 0)


def test_mlp_losses_rejects_what_it_cannot_stack():
    net = _net()
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    x = y = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="Sequential"):
        ensemble.mlp_losses(nn.Linear(3, 2), names, shapes, x, y)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        ensemble.mlp_losses(nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5)), names[:2], shapes[:2], x, y)
    with pytest.raises(ValueError, match="names"):
        ensemble.mlp_losses(net, names[:2], shapes[:2], x, y)
