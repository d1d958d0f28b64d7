"""Realizations stacked in one tensor: each row is the run ``maps.network`` makes alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import backward_lib as bl
from backward_lib import ensemble, maps, models, optim, orders
from backward_lib.analysis import curvature
from conftest import make_problem, max_diff


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def test_rows_are_independent_runs_of_the_real_sgd_map():
    net = _net()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    flat = curvature.flat_loss(net, nn.functional.mse_loss, x, y)
    w0 = flat.pack(maps.params_of(net))
    batches = ensemble.iid_batches(20, 4, realizations=3, seed=7)
    T = ensemble.flat_network(flat, optim.sgd(0.1), batches)
    W = bl.iterate(T, w0.expand(3, -1).clone(), orders.backward(), [6])[6]
    for r in range(3):
        sched = torch.stack([batches(n)[r] for n in range(1, 7)])
        Tr = maps.network(net, nn.functional.mse_loss, maps.sgd(0.1), x, y, sched)
        theta = bl.iterate(Tr, maps.params_of(net), orders.backward(), [6])[6]
        # vmap of the same step: batched matmuls may round differently, float64 round-off
        torch.testing.assert_close(W[r], flat.pack(theta), rtol=0, atol=1e-12)
    assert not torch.equal(W[0], W[1])  # different batches, different runs
    losses = ensemble.losses(flat)(W, torch.arange(20).expand(3, -1))
    for r in range(3):
        torch.testing.assert_close(losses[r], flat(W[r]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("opt", ["momentum", "adamw"])
def test_stacked_rows_with_state_and_batchnorm_match_single_runs(bn_net, opt):
    """Dict θ with BatchNorm buffers, optimizer state per row: rows are single runs."""
    p = bn_net
    R, steps = 3, 5
    scheds = torch.stack([p.schedule[torch.randperm(8, generator=torch.Generator().manual_seed(r))]
                          for r in range(R)])  # fmt: skip
    T = ensemble.network(p.model, p.loss_fn, maps.get(opt, 0.05), p.x, p.y, lambda n: scheds[:, n - 1])
    stacked = bl.iterate(T, ensemble.repeat(p.theta0(), R), orders.backward(), [steps])[steps]
    for r in range(R):
        Tr = maps.network(p.model, p.loss_fn, maps.get(opt, 0.05), p.x, p.y, scheds[r])
        single = bl.iterate(Tr, p.theta0(), orders.backward(), [steps])[steps]
        # float64; AdamW divides by √v + ε, which amplifies summation-order round-off (as in
        # test_batched): the bias before BatchNorm has a gradient that is zero up to round-off
        tol = 1e-8 if opt == "adamw" else 1e-12
        assert max_diff(single, {k: v[r] for k, v in stacked.items()}) < tol, r
        assert int(stacked["1.num_batches_tracked"][r]) == steps


def test_per_row_targets_and_stack():
    """``rows_y``: run r trains on its own targets y[:, r] (one teacher per run)."""
    members = [models.mlp(6, 1, depth=1, width=4, seed=s).double() for s in range(2)]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=g, dtype=torch.float64)
    y = torch.randn(16, 2, 1, generator=g, dtype=torch.float64)
    full = torch.arange(16).expand(4, -1)
    T = ensemble.network(members[0], nn.functional.mse_loss, maps.sgd(0.1), x, y,
                         lambda n: full[n - 1].expand(2, -1), rows_y=True)  # fmt: skip
    out = bl.iterate(T, ensemble.stack([maps.params_of(m) for m in members]), orders.forward(), [4])[4]
    for r, m in enumerate(members):
        Tr = maps.network(m, nn.functional.mse_loss, maps.sgd(0.1), x, y[:, r], full)
        single = bl.iterate(Tr, maps.params_of(m), orders.forward(), [4])[4]
        assert max_diff(single, {k: v[r] for k, v in out.items()}) < 1e-12


def test_iid_batches_are_seeded_subsets():
    b = ensemble.iid_batches(10, 4, realizations=5, seed=1)
    first = b(1)
    assert first.shape == (5, 4) and all(len(set(row.tolist())) == 4 for row in first)
    assert torch.equal(first, b(1)) and not torch.equal(first, b(2))
    with pytest.raises(ValueError, match="batch"):
        ensemble.iid_batches(3, 4, 1, 0)


def test_ensemble_rejects_bad_input():
    p = make_problem(models.mlp(6, 3, depth=1, width=4, seed=0))
    with pytest.raises(ValueError, match="optimizer"):
        ensemble.network(p.model, p.loss_fn, "sgd", p.x, p.y, lambda n: p.schedule[None, n - 1])
    with pytest.raises(ValueError, match="thetas"):
        ensemble.stack([])
    with pytest.raises(ValueError, match="R"):
        ensemble.repeat(p.theta0(), 0)


def test_outputs_row_losses_and_gradients_are_per_row():
    members = [models.mlp(6, 1, depth=1, width=4, seed=s).double() for s in range(3)]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, 1, generator=g, dtype=torch.float64)
    theta = ensemble.stack([maps.params_of(m) for m in members])
    out = ensemble.outputs(members[0], theta, x)
    L = ensemble.row_losses(members[0], nn.functional.mse_loss, theta, x, y, rows_y=True)
    G = ensemble.gradients(members[0], nn.functional.mse_loss, theta, x, y, rows_y=True)
    for r, m in enumerate(members):
        torch.testing.assert_close(out[r], m(x), atol=1e-14, rtol=0)
        loss = nn.functional.mse_loss(m(x), y[:, r])
        torch.testing.assert_close(L[r], loss, atol=1e-14, rtol=0)
        names = [k for k, _ in m.named_parameters()]
        for k, gr in zip(names, torch.autograd.grad(loss, list(m.parameters())), strict=True):
            torch.testing.assert_close(G[k][r], gr, atol=1e-14, rtol=0)
    shared = ensemble.row_losses(members[0], nn.functional.mse_loss, theta, x, y[:, 0])
    torch.testing.assert_close(shared[0], L[0], atol=0, rtol=0)
