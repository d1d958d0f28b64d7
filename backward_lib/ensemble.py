"""Many realizations of one network's training in one tensor: the one step, vmapped.

The theory chapters need hundreds of realizations of the *real* SGD map on a network of a
few dozen parameters, each with its own batch at every step. Their parameters are stacked
(leaves [R, …], or rows of ``W`` [R, d] in the flat layout of
:class:`backward_lib.analysis.curvature.FlatLoss`) and the network's one pure training step
(:func:`backward_lib.maps.step`) runs under ``torch.func.vmap``, so a realization's
arithmetic is that of the step alone, and each row matches ``maps.network`` on that
realization within round-off (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from . import maps
from .engine import StepMap
from .objective import Objective
from .optim import GradientTransformation

__all__ = [
    "flat_network",
    "gradients",
    "iid_batches",
    "losses",
    "network",
    "outputs",
    "repeat",
    "row_losses",
    "stack",
]

Params = dict[str, torch.Tensor]
Batches = Callable[[int], torch.Tensor]  # batches(n): [R, b] example indices of batch n, per row


def stack(thetas: list[Params]) -> Params:
    """θ of R realizations as one dict, leaves [R, …] (the members' shapes must agree)."""
    if not thetas:
        raise ValueError("thetas must be a non-empty list of parameter dicts")
    return {k: torch.stack([t[k].detach() for t in thetas]) for k in thetas[0]}


def repeat(theta: Params, R: int) -> Params:
    """R copies of θ as stacked leaves [R, …]."""
    if R < 1:
        raise ValueError(f"R must be ≥ 1, got {R}")
    return {k: v.detach().expand(R, *v.shape).clone() for k, v in theta.items()}


def _data(t: torch.Tensor, idx: torch.Tensor, per_row: bool) -> torch.Tensor:
    """Batch rows [R, b, …]: shared data t [N, …] indexed by idx [R, b], or per-row t [N, R, …]."""
    if not per_row:
        return t[idx]
    return t[idx, torch.arange(idx.shape[0], device=idx.device)[:, None]]


def network(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: GradientTransformation,
    x: torch.Tensor,
    y: torch.Tensor,
    batches: Batches,
    *,
    rows_y: bool = False,
) -> StepMap:
    """The maps T_n of R realizations at once on stacked θ (leaves [R, …], params and buffers):
    (θ_r, s_r) ↦ maps.step(θ_r, s_r, batch B_n^r), B_n^r = ``batches(n)[r]``.

    ``rows_y``: ``y`` is [N, R, …], realization r's own targets (e.g. one teacher per run).
    Each chain starts with fresh optimizer state per row.
    """
    if not isinstance(optimizer, GradientTransformation):
        raise ValueError(f"optimizer must be an optim.GradientTransformation, got {type(optimizer).__name__}")
    obj = Objective(model, loss_fn)
    names = set(obj.names)
    one = vmap(maps.step(obj.grad, optimizer))

    def init(theta: Params) -> Any:
        return vmap(optimizer.init)({k: v for k, v in theta.items() if k in names})

    def update(theta: Params, state: Any, n: int) -> tuple[Params, Any]:
        idx = batches(n)
        params = {k: v for k, v in theta.items() if k in names}
        buffers = {k: v for k, v in theta.items() if k not in names}
        params, buffers, state = one(params, buffers, state, (_data(x, idx, False), _data(y, idx, rows_y)))
        return {k: params[k] if k in params else buffers[k] for k in theta}, state

    return StepMap(init, update)


def _parts(model: nn.Module, theta: Params) -> tuple[Params, Params]:
    names = {k for k, _ in model.named_parameters()}
    return {k: v for k, v in theta.items() if k in names}, {k: v for k, v in theta.items() if k not in names}


def outputs(model: nn.Module, theta: Params, x: torch.Tensor) -> torch.Tensor:
    """model_r(x) for every row r of stacked θ: [R, b, …] (x shared; training mode, as the step)."""
    obj = Objective(model, lambda out, y: out)
    params, buffers = _parts(model, theta)
    return vmap(lambda p, b: obj.forward(p, b, x)[0])(params, buffers)


def row_losses(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rows_y: bool = False,
) -> torch.Tensor:
    """L_r = loss_fn(model_r(x), y_r) on all of (x, y) for every row r of stacked θ: [R]."""
    obj = Objective(model, loss_fn)
    params, buffers = _parts(model, theta)
    return vmap(lambda p, b, yr: obj(p, b, x, yr)[0], in_dims=(0, 0, 1 if rows_y else None))(
        params, buffers, y
    )


def gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rows_y: bool = False,
) -> Params:
    """∇L_r(θ_r) on all of (x, y) for every row r of stacked θ (parameter leaves [R, …])."""
    obj = Objective(model, loss_fn)
    params, buffers = _parts(model, theta)
    g = lambda p, b, yr: obj.grad(p, b, x, yr)[0]  # noqa: E731
    return vmap(g, in_dims=(0, 0, 1 if rows_y else None))(params, buffers, y)


def flat_network(flat: Any, optimizer: GradientTransformation, batches: Batches) -> StepMap:
    """:func:`network` on rows of W [R, d] in the flat layout of a ``curvature.FlatLoss``
    (its model, loss and data; its buffers held fixed, as ``FlatLoss`` does)."""
    inner = network(flat.model, flat.loss_fn, optimizer, flat.x, flat.y, batches)
    buffers = dict(flat.buffers)

    def with_buffers(W: torch.Tensor) -> Params:
        return {**flat.unpack(W), **{k: b.expand(len(W), *b.shape) for k, b in buffers.items()}}

    def init(W: torch.Tensor) -> Any:
        return inner.init(with_buffers(W))

    def update(W: torch.Tensor, state: Any, n: int) -> tuple[torch.Tensor, Any]:
        theta, state = inner.update(with_buffers(W), state, n)
        return torch.cat([theta[k].reshape(len(W), -1) for k in flat.names], dim=1), state

    return StepMap(init, update)


def losses(flat: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``losses(W, idx)`` [R]: the loss of row r of ``W`` [R, d] on the examples idx[r] [R, b]
    (the objective of ``flat``, vmapped over rows)."""
    obj = flat.objective

    def row(w: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return obj(flat.unpack(w), flat.buffers, xb, yb)[0]

    def f(W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return vmap(row)(W, flat.x[idx], flat.y[idx])

    return f


def iid_batches(n_points: int, batch: int, realizations: int, seed: int) -> Callable[[int], torch.Tensor]:
    """``batches(n)``: a fresh uniform ``batch``-subset of ``n_points`` for every realization
    at every step (i.i.d. over steps, unlike an epoch schedule), seeded by ``seed + n``."""
    if not 0 < batch <= n_points:
        raise ValueError(f"batch must be in 1..n_points={n_points}, got {batch}")

    def batches(n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + n)
        return torch.rand(realizations, n_points, generator=g).argsort(-1)[:, :batch]

    return batches
