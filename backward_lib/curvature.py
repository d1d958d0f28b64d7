"""A network's loss as a function of one flat parameter vector: Hessian and gradient noise.

Theory chapters linearize SGD near a minimum (Examples 2.1 and 3.2): they need the Hessian
H of the full loss at θ* and the covariance C of the per-batch gradients there. Both come from
autograd on a flat vector w ∈ R^d, so d must stay small (a few thousand at most).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["FlatLoss", "flat_loss", "hessian", "batch_gradients", "gradient_covariance"]


class FlatLoss:
    """L(w) for a model whose trainable parameters are packed into one vector w."""

    def __init__(self, model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor):
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        self.names = [k for k, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.buffers = {k: b for k, b in model.named_buffers()}

    def pack(self, theta: dict[str, torch.Tensor]) -> torch.Tensor:
        """The flat vector w of a parameter dict (buffers are left out)."""
        return torch.cat([theta[k].detach().reshape(-1) for k in self.names])

    def unpack(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameter dict of a flat vector (views into w, so autograd flows)."""
        out, i = {}, 0
        for k, s in zip(self.names, self.shapes, strict=True):
            n = s.numel()
            out[k] = w[i : i + n].view(s)
            i += n
        return out

    def __call__(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss on the examples ``idx`` (all of them when None)."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        out = functional_call(self.model, {**self.unpack(w), **self.buffers}, (x,))
        return self.loss_fn(out, y)


def flat_loss(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> FlatLoss:
    """The loss of ``model`` on (x, y) as a function of a flat parameter vector."""
    return FlatLoss(model, loss_fn, x, y)


def hessian(loss: FlatLoss, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
    """The d × d Hessian ∇²L(w), symmetrized (round-off makes it slightly asymmetric)."""
    H = torch.autograd.functional.hessian(lambda v: loss(v, idx), w.detach())
    return 0.5 * (H + H.T)


def batch_gradients(loss: FlatLoss, w: torch.Tensor, batches: torch.Tensor) -> torch.Tensor:
    """Gradients ∇L_{B}(w) for each row of index tensor ``batches`` [m, b]; shape [m, d]."""
    rows = []
    for idx in batches:
        v = w.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(v, idx), v)
        rows.append(g)
    return torch.stack(rows)


def gradient_covariance(loss: FlatLoss, w: torch.Tensor, batches: torch.Tensor) -> torch.Tensor:
    """Covariance C of the batch gradients at w over the rows of ``batches`` (d × d)."""
    g = batch_gradients(loss, w, batches)
    g = g - g.mean(0, keepdim=True)
    return g.T @ g / (g.shape[0] - 1)
