"""Many realizations of SGD on a small MLP in one tensor: rows of ``W`` [R, d] are the flat
parameters of R independent runs, each with its own batch at every step.

The theory chapters need hundreds of realizations of the *real* SGD map on a network of a
few dozen parameters; one engine call over ``W`` advances all of them. The losses are
written with ``einsum`` over the stacked rows, so a realization's arithmetic does not depend
on R, and each row matches ``maps.network`` on that realization alone (the chapters check it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["iid_batches", "mlp_losses", "sgd"]

Losses = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mlp_losses(model: nn.Sequential, names: list[str], shapes: list[torch.Size], x: torch.Tensor,
               y: torch.Tensor) -> Losses:  # fmt: skip
    """``losses(W, idx)`` [R]: the mean squared error of row r of ``W`` on examples idx[r].

    ``model`` is a ``Sequential`` of ``Linear`` layers and parameter-free layers
    (activations, ``Flatten``); ``names``/``shapes`` give the flat layout of ``W`` (those of
    ``curvature.FlatLoss``); ``idx`` is [R, b].
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError("model must be an nn.Sequential of Linear and parameter-free layers")
    layout = dict(zip(names, shapes, strict=True))
    for j, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            if f"{j}.weight" not in layout or f"{j}.bias" not in layout:
                raise ValueError(f"names: layer {j} is Linear but {j}.weight/{j}.bias are not in names")
        elif any(True for _ in layer.parameters()):
            raise ValueError(f"model: layer {j} ({type(layer).__name__}) has parameters but is not Linear")

    def losses(W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in layout.items():
            params[name] = W[:, i : i + shape.numel()].view(-1, *shape)
            i += shape.numel()
        a = x[idx]  # [R, b, in]
        for j, layer in enumerate(model):
            if isinstance(layer, nn.Linear):
                a = torch.einsum("rbi,roi->rbo", a, params[f"{j}.weight"]) + params[f"{j}.bias"][:, None]
            elif not isinstance(layer, nn.Flatten):
                a = layer(a)
        return ((a - y[idx]) ** 2).mean(dim=(1, 2))

    return losses


def sgd(losses: Losses, lr: float, batches: Callable[[int], torch.Tensor]) -> Callable:
    """The SGD maps of every row at once: T_n(W)_r = W_r − lr ∇L_{B_n^r}(W_r), with
    ``batches(n)`` the [R, b] examples of batch n (n = 1, 2, …) of each realization."""

    def step(W: torch.Tensor, n: int) -> torch.Tensor:
        W = W.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(losses(W, batches(n)).sum(), W)  # rows do not interact
        return (W - lr * g).detach()

    return step


def iid_batches(n_points: int, batch: int, realizations: int, seed: int) -> Callable[[int], torch.Tensor]:
    """``batches(n)``: a fresh uniform ``batch``-subset of ``n_points`` for every realization
    at every step (i.i.d. over steps, unlike an epoch schedule), seeded by ``seed + n``."""
    if not 0 < batch <= n_points:
        raise ValueError(f"batch must be in 1..n_points={n_points}, got {batch}")

    def batches(n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + n)
        return torch.rand(realizations, n_points, generator=g).argsort(-1)[:, :batch]

    return batches
