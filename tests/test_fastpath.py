"""The ReLU-MLP gradient written out (backward_lib.fastpath) is autograd's gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import vmap
from torch.nn import functional as F  # noqa: N812

from backward_lib import fastpath, maps, models, objective, orders
from backward_lib.engine import trajectory


def _data(dtype, n=32, classes=10, regression=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 6, 6, generator=g, dtype=dtype)
    y = (
        torch.randn(n, 3, generator=g, dtype=dtype)
        if regression
        else torch.randint(0, classes, (n,), generator=g)
    )
    return x, y


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("loss_fn", [F.cross_entropy, F.mse_loss])
def test_written_out_gradient_equals_autograd(dtype, rtol, loss_fn):
    regression = loss_fn is F.mse_loss
    model = models.mlp(36, 3 if regression else 10, 3, 20, init="he", seed=1).to(dtype)
    x, y = _data(dtype, regression=regression)
    params = {k: v.detach() for k, v in model.named_parameters()}
    fast, slow = objective.Objective(model, loss_fn), objective.Objective(model, loss_fn, fast=False)
    assert fast._fast_grad is not None and slow._fast_grad is None
    (g1, (l1, b1)), (g2, (l2, b2)) = fast.grad(params, {}, x[:8], y[:8]), slow.grad(params, {}, x[:8], y[:8])
    assert list(g1) == list(g2) and b1 == b2 == {}
    torch.testing.assert_close(l1, l2, rtol=rtol, atol=0)
    for k in g1:
        scale = float(g2[k].abs().max())
        torch.testing.assert_close(g1[k], g2[k], rtol=rtol, atol=rtol * scale, msg=k)
    assert all(not p.requires_grad for p in g1.values())


def test_only_plain_relu_mlps_take_the_path():
    assert fastpath.relu_mlp_grad(models.mlp(4, 2, 2, 8, seed=0), F.cross_entropy) is not None
    assert fastpath.relu_mlp_grad(nn.Sequential(nn.Linear(4, 2)), F.mse_loss) is not None
    assert (
        fastpath.relu_mlp_grad(models.mlp(4, 2, 2, 8, seed=0), nn.CrossEntropyLoss()) is None
    )  # label smoothing etc.
    assert (
        fastpath.relu_mlp_grad(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), F.mse_loss) is None
    )
    assert (
        fastpath.relu_mlp_grad(
            nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)), F.mse_loss
        )
        is None
    )
    assert (
        fastpath.relu_mlp_grad(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), F.mse_loss) is None
    )  # ends in ReLU
    assert (
        fastpath.relu_mlp_grad(
            nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 2)), F.mse_loss
        )
        is None
    )


def test_engine_and_vmap_paths_agree():
    """The sequential engine (fast path) and vmapped chains (torch.func) give the same iterates."""
    model = models.mlp(36, 10, 2, 16, init="he", seed=0).double()
    x, y = _data(torch.float64, n=64)
    sched = torch.randint(0, 64, (6, 8), generator=torch.Generator().manual_seed(3))
    T = maps.network(model, F.cross_entropy, maps.sgd(0.1), x, y, sched)
    theta0 = maps.params_of(model)
    seq = dict(trajectory(T, theta0, orders.backward(), [3, 6]))
    params, _ = T.split(theta0)
    stacked = {k: v.expand(2, *v.shape).clone() for k, v in params.items()}
    state = vmap(T.optimizer.init)(stacked)
    for t in range(6):  # chain 6 applies batches 6..1; chain 3 (padded) 3..1 then stays on batch 1
        rows = torch.stack([sched[max(2 - t, 0)], sched[5 - t]])
        stacked, _, state = vmap(T.step)(stacked, {}, state, (x[rows], y[rows]))
        if t == 2:
            three = {k: v[0].clone() for k, v in stacked.items()}
    for k in params:
        torch.testing.assert_close(seq[3][k], three[k], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(seq[6][k], stacked[k][1], rtol=1e-12, atol=1e-14)
