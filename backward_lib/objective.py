"""A network's loss as a pure function of (params, buffers, batch), written once.

Everything that differentiates a network's loss starts here: the training step
(:func:`backward_lib.maps.network`), chain batching, realization ensembles, the Hessians and
gradient noise of the theory chapters and the Hessian-vector products of Appendix C.

* :class:`Objective` holds the model (a stateless template for ``torch.func.functional_call``)
  and the loss; ``objective(params, buffers, x, y) -> (loss, new_buffers)``. The model runs in
  training mode: BatchNorm normalizes with batch statistics and writes its running statistics
  into *copies* of ``buffers``, returned as the new buffers (the inputs are never written).
* :meth:`Objective.grad` differentiates it: ``torch.func.grad_and_value`` with ``has_aux``
  (the buffers ride along) under a torch.func transform, so it composes with ``vmap``
  (stacked chains, ensembles, per-batch gradients); eagerly one ``torch.autograd.grad`` of the
  same function (same kernels, without functorch's per-call overhead).
* :class:`Flat` packs the parameters into one vector w for the curvature code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch._C import _functorch
from torch.func import functional_call, grad_and_value, vmap

from .fastpath import relu_mlp_grad

__all__ = [
    "Flat",
    "Objective",
    "batch_gradients",
    "gradient_covariance",
    "hvp",
    "objective",
    "split",
]

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def split(model: nn.Module, theta: Params) -> tuple[Params, Params]:
    """(params, buffers) of a θ dict as :func:`maps.params_of` gives it (parameters first)."""
    names = {k for k, _ in model.named_parameters()}
    missing = names - set(theta)
    if missing:
        raise ValueError(f"theta: missing parameter entries {sorted(missing)[:5]}")
    return {k: v for k, v in theta.items() if k in names}, {k: v for k, v in theta.items() if k not in names}


def _per_example(loss_fn: LossFn) -> Callable:
    """The loss with ``reduction="none"``: a copy of an ``nn`` loss module, or the keyword."""
    if isinstance(loss_fn, nn.Module) and hasattr(loss_fn, "reduction"):
        fn = copy.copy(loss_fn)
        fn.reduction = "none"
        return fn
    return lambda out, y: loss_fn(out, y, reduction="none")


@dataclass(frozen=True)
class Objective:
    """L(params, buffers; x, y) = loss_fn(model(x), y), the model evaluated functionally.

    ``loss_fn`` reduces over the batch (a mean, as torch's losses do by default).
    """

    model: nn.Module
    loss_fn: LossFn
    fast: bool = True  # eager gradients of ReLU MLPs written out (backward_lib.fastpath)
    names: tuple[str, ...] = field(init=False)
    buffer_names: tuple[str, ...] = field(init=False)
    _fast_grad: Callable | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(self.model).__name__}")
        if not callable(self.loss_fn):
            raise ValueError(f"loss_fn must be callable, got {type(self.loss_fn).__name__}")
        object.__setattr__(self, "names", tuple(k for k, _ in self.model.named_parameters()))
        object.__setattr__(self, "buffer_names", tuple(k for k, _ in self.model.named_buffers()))
        object.__setattr__(self, "_fast_grad", relu_mlp_grad(self.model, self.loss_fn) if self.fast else None)
        self.model.train()  # batch statistics; running statistics go to the returned buffers

    def forward(self, params: Params, buffers: Params, x: torch.Tensor) -> tuple[torch.Tensor, Params]:
        """(model(x), new buffers): the one functional call of the model.

        The buffers are cloned first because BatchNorm updates its running statistics in place:
        the caller's tensors stay untouched, so the function is pure.
        """
        buffers = {k: b.clone() for k, b in buffers.items()}
        out = functional_call(self.model, (params, buffers), (x,))
        return out, buffers

    def __call__(
        self, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        """(L = loss_fn(model(x), y), new buffers)."""
        out, buffers = self.forward(params, buffers, x)
        return self.loss_fn(out, y), buffers

    def weighted(
        self, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | float
    ) -> torch.Tensor:
        """Σ_e w_e ℓ_e: per-example losses (``reduction="none"``, averaged over any output
        dimensions) weighted by ``w`` (a batch's mean loss is w_e = 1/b)."""
        out, _ = self.forward(params, buffers, x)
        per = _per_example(self.loss_fn)(out, y).reshape(len(x), -1).mean(1)
        return (w * per).sum()

    def grad(
        self, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[Params, tuple[torch.Tensor, Params]]:
        """(∇_params L, (L, new buffers)) of :meth:`__call__`.

        Under a torch.func transform (vmap, grad) it is ``torch.func.grad_and_value`` with
        ``has_aux``. Called eagerly it is one ``torch.autograd.grad`` of the same function: the
        same backward kernels (the results agree to the last bit in the tests), without
        functorch's per-call wrapping, which measured 2–3× the cost of a small network's step;
        for a ReLU MLP (with ``fast``) the chain rule written out (:mod:`backward_lib.fastpath`).
        """
        if _functorch.maybe_current_level() is None:
            if self._fast_grad is not None and not buffers:
                with torch.no_grad():
                    grads, loss = self._fast_grad(params, x, y)
                return grads, (loss, {})
            with torch.enable_grad():
                p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
                loss, new = self(p, buffers, x, y)
                grads = torch.autograd.grad(loss, list(p.values()))
            return dict(zip(p, grads, strict=True)), (loss.detach(), new)
        return self.func_grad(params, buffers, x, y)

    def func_grad(
        self, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[Params, tuple[torch.Tensor, Params]]:
        """:meth:`grad` by ``torch.func.grad_and_value`` (``has_aux``), whatever the context."""

        def f(p: Params) -> tuple[torch.Tensor, tuple[torch.Tensor, Params]]:
            loss, new = self(p, buffers, x, y)
            return loss, (loss.detach(), new)

        grads, (_, aux) = grad_and_value(f, has_aux=True)(params)
        return grads, aux


def objective(model: nn.Module, loss_fn: LossFn) -> Objective:
    """The loss of ``model`` under ``loss_fn`` as a pure function of (params, buffers, x, y)."""
    return Objective(model, loss_fn)


def hvp(f: Callable[[Params], torch.Tensor], params: Params, v: Params) -> Params:
    """∇²f(θ) v, forward-over-reverse (``jvp`` of ``grad``): exact, and it composes with vmap."""
    from torch.func import grad, jvp

    return jvp(grad(f), (params,), (v,))[1]


@dataclass(frozen=True)
class Flat:
    """The flat view of a model's parameters: w ∈ R^d, the entries of ``names`` in order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, model: nn.Module) -> Flat:
        """The layout of ``model.named_parameters()``."""
        return cls(tuple(k for k, _ in model.named_parameters()),
                   tuple(p.shape for _, p in model.named_parameters()))  # fmt: skip

    @property
    def size(self) -> int:
        """d, the number of scalars."""
        return sum(s.numel() for s in self.shapes)

    def pack(self, params: Params) -> torch.Tensor:
        """w = concat(vec(θ_k)) over ``names`` (other entries, e.g. buffers, left out; detached)."""
        return torch.cat([params[k].detach().reshape(-1) for k in self.names])

    def unpack(self, w: torch.Tensor) -> Params:
        """The parameter dict of w (views into w, so autograd and vmap flow through). Leading
        dimensions of w [..., d] (stacked rows) are kept: leaves [..., *shape]."""
        if w.shape[-1:] != (self.size,):
            raise ValueError(f"w must have {self.size} entries, got shape {tuple(w.shape)}")
        out, i = {}, 0
        for k, s in zip(self.names, self.shapes, strict=True):
            n = s.numel()
            out[k] = w[..., i : i + n].reshape(*w.shape[:-1], *s)
            i += n
        return out


def batch_gradients(
    obj: Objective, params: Params, buffers: Params, x: torch.Tensor, y: torch.Tensor, batches: torch.Tensor
) -> Params:
    """∇L_B(θ) for every row B of the index tensor ``batches`` [m, b], by vmap: leaves [m, …]."""
    if batches.ndim != 2:
        raise ValueError(f"batches must be [m, b] indices, got shape {tuple(batches.shape)}")
    return vmap(lambda xb, yb: obj.grad(params, buffers, xb, yb)[0])(x[batches], y[batches])


def gradient_covariance(g: torch.Tensor) -> torch.Tensor:
    """C = Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ / (m − 1) of gradient rows g [m, d] (the gradient noise)."""
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"g must be [m ≥ 2, d] gradient rows, got shape {tuple(g.shape)}")
    g = g - g.mean(0, keepdim=True)
    return g.T @ g / (g.shape[0] - 1)
