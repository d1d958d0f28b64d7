"""The CPU fast path of :meth:`backward_lib.objective.Objective.grad` for the paper's MLPs.

At batch 8 a 5×500 ReLU MLP's step is small matrix products; autograd's graph, its per-node
dispatch and the loss module's backward cost about as much as the arithmetic (profiled: the
plain ``torch.optim`` step 3.5 ms, the same products written out 1.5 ms, one thread). For a
``Sequential`` of ``Flatten``/``Linear``/``ReLU`` under the mean cross-entropy or mean squared
error, the gradient is written out once here, from the chain rule of that same loss:

    z_l = a_{l-1} W_lᵀ + b_l,   a_l = relu(z_l)   (no ReLU after the last layer);
    g_L = ∂L/∂z_L = (softmax(z_L) − onehot(y)) / B   (cross-entropy)   or   2 (z_L − y) / (B·k)  (MSE);
    ∇W_l = g_lᵀ a_{l-1},   ∇b_l = Σ_batch g_l,   g_{l-1} = (g_l W_l) ⊙ [a_{l-1} > 0].

It is the gradient autograd computes, with autograd's own backward kernels (nll_loss,
log_softmax, threshold, the products in the same layout), so the bits agree where the
products do; the tests compare the two (float64 to 1e-12, float32 to 1e-5 relative). Only eager calls take it;
under ``vmap``/``grad`` the objective differentiates with torch.func as always.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the usual name)

aten = torch.ops.aten

__all__ = ["relu_mlp_grad"]

Params = dict[str, torch.Tensor]
GradFn = Callable[[Params, torch.Tensor, torch.Tensor], tuple[Params, torch.Tensor]]


def _layers(model: nn.Module) -> list[str] | None:
    """Names of the Linear layers of a Flatten?–(Linear–ReLU)*–Linear ``Sequential``, else None."""
    if not isinstance(model, nn.Sequential) or any(True for _ in model.buffers()):
        return None
    names, mods = [], list(model.named_children())
    if mods and isinstance(mods[0][1], nn.Flatten) and mods[0][1].start_dim == 1 and mods[0][1].end_dim == -1:
        mods = mods[1:]
    for i, (name, m) in enumerate(mods):
        want_linear = i % 2 == 0
        if want_linear and isinstance(m, nn.Linear) and m.bias is not None:
            names.append(name)
        elif not want_linear and isinstance(m, nn.ReLU):
            continue
        else:
            return None
    return names if mods and len(mods) % 2 == 1 else None


def relu_mlp_grad(model: nn.Module, loss_fn: Callable) -> GradFn | None:
    """``grad(params, x, y) -> (∇_params L, L)`` written out for ``model``, or None when
    ``model`` or ``loss_fn`` is not one this path covers (then autograd is used)."""
    layers = _layers(model)
    if layers is None or loss_fn not in (F.cross_entropy, F.mse_loss):
        return None
    classify = loss_fn is F.cross_entropy

    def grad(params: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[Params, torch.Tensor]:
        a = x.reshape(len(x), -1)
        acts = [a]
        W = [params[f"{n}.weight"] for n in layers]
        b = [params[f"{n}.bias"] for n in layers]
        for i in range(len(layers)):
            z = torch.addmm(b[i], acts[-1], W[i].t())
            acts.append(z.relu_() if i < len(layers) - 1 else z)
        z = acts.pop()
        if classify:  # autograd's own backward kernels of nll_loss ∘ log_softmax: same bits
            logp = torch.log_softmax(z, 1)
            loss, total = aten.nll_loss_forward(logp, y, None, 1, -100)
            g = aten.nll_loss_backward(torch.ones_like(loss), logp, y, None, 1, -100, total)
            g = aten._log_softmax_backward_data(g, logp, 1, logp.dtype)
        else:
            loss = aten.mse_loss(z, y, 1)
            g = aten.mse_loss_backward(torch.ones_like(loss), z, y, 1)
        grads: Params = {}
        for i in reversed(range(len(layers))):
            a = acts[i]
            grads[f"{layers[i]}.weight"] = g.t().mm(a)
            grads[f"{layers[i]}.bias"] = g.sum(0)
            if i:
                g = aten.threshold_backward(g.mm(W[i]), a, 0)  # ReLU's backward, as autograd
        return {k: grads[k] for k in params}, loss

    return grad
