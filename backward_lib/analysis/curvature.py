"""A network's loss as a function of one flat parameter vector: Hessian and gradient noise.

Theory chapters linearize SGD near a minimum (Examples 2.1 and 3.2): they need the Hessian
H of the full loss at θ* and the covariance C of the per-batch gradients there. Both come from
the network's one loss function (:class:`backward_lib.objective.Objective`) on the flat view
w ∈ R^d of its parameters (:class:`backward_lib.objective.Flat`), so d must stay small (a few
thousand at most) for the dense d × d matrices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .. import objective as _objective
from ..objective import Flat, Objective

__all__ = ["FlatLoss", "flat_loss", "hessian", "batch_gradients", "gradient_covariance"]


class FlatLoss:
    """L(w) = Objective(unpack(w), buffers; x_idx, y_idx)[0], w the packed trainable parameters.

    The buffers are the model's, held fixed (BatchNorm updates go to copies and are dropped).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor):
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        self.objective = Objective(model, loss_fn)
        self.layout = Flat.of(model)
        self.names, self.shapes = list(self.layout.names), list(self.layout.shapes)
        self.buffers = {k: b for k, b in model.named_buffers()}

    def pack(self, theta: dict[str, torch.Tensor]) -> torch.Tensor:
        """The flat vector w of a parameter dict (buffers are left out)."""
        return self.layout.pack(theta)

    def unpack(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameter dict of a flat vector (views into w, so autograd flows)."""
        return self.layout.unpack(w)

    def __call__(self, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss on the examples ``idx`` (all of them when None)."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        return self.objective(self.unpack(w), self.buffers, x, y)[0]


def flat_loss(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> FlatLoss:
    """The loss of ``model`` on (x, y) as a function of a flat parameter vector."""
    return FlatLoss(model, loss_fn, x, y)


def hessian(loss: FlatLoss, w: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
    """The d × d Hessian ∇²L(w), symmetrized (round-off makes it slightly asymmetric)."""
    H = torch.autograd.functional.hessian(lambda v: loss(v, idx), w.detach())
    return 0.5 * (H + H.T)


def batch_gradients(loss: FlatLoss, w: torch.Tensor, batches: torch.Tensor) -> torch.Tensor:
    """Gradients ∇L_{B}(w) for each row of index tensor ``batches`` [m, b]; shape [m, d] (vmap)."""
    g = _objective.batch_gradients(
        loss.objective, loss.unpack(w.detach()), loss.buffers, loss.x, loss.y, batches
    )
    return torch.cat([g[k].reshape(len(batches), -1) for k in loss.names], dim=1)


def gradient_covariance(loss: FlatLoss, w: torch.Tensor, batches: torch.Tensor) -> torch.Tensor:
    """Covariance C = Σ (g_B − ḡ)(g_B − ḡ)ᵀ/(m − 1) of the batch gradients at w over the rows
    of ``batches`` (d × d)."""
    return _objective.gradient_covariance(batch_gradients(loss, w, batches))
