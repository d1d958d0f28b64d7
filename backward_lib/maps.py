"""Step maps for networks: an optimizer step on (parameters, optimizer state, batch n).

Optimizers are pairs of functions, as in optax: ``init(params) -> state`` and
``update(params, grads, state) -> (params, state)``. Updates run in place on the chain's own
copy of the parameters (the engine hands every chain a private copy), with ``torch._foreach``
kernels: one fused launch per update instead of one per tensor.

:func:`network` turns (model, loss, optimizer, data, schedule) into an engine
:class:`~backward_lib.engine.StepMap` whose θ is the model's parameters *and buffers*
(BatchNorm running statistics travel with the chain), and whose n-th map uses batch n of the
schedule. Each chain starts with fresh optimizer state, as the paper's backward SGD does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.func import functional_call

from .engine import StepMap

__all__ = ["NAMES", "Optimizer", "adamw", "get", "network", "params_of", "sgd"]

Params = dict[str, torch.Tensor]


class Optimizer(NamedTuple):
    """An optimizer as two functions; ``state`` is passed in and returned, never hidden."""

    init: Callable[[list[torch.Tensor]], Any]
    update: Callable[[list[torch.Tensor], list[torch.Tensor], Any], Any]


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class SGDState(NamedTuple):
    momentum: list[torch.Tensor] | None  # None until the first step, as in torch.optim.SGD


def sgd(lr: float, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """SGD with optional (Nesterov) momentum, torch.optim.SGD's convention (dampening 0).

    b ← μ b + g (b = g at the first step);  d = g + μ b (Nesterov) or b;  θ ← θ − h d.
    With μ = 0 this is plain SGD, θ ← θ − h g.
    """
    lr = _positive("lr", lr)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")

    def init(params: list[torch.Tensor]) -> SGDState:
        return SGDState(None)

    def update(params, grads, state: SGDState):
        if momentum == 0.0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return state
        if state.momentum is None:
            buf = [g.clone() for g in grads]
        else:
            buf = state.momentum
            torch._foreach_mul_(buf, momentum)
            torch._foreach_add_(buf, grads)
        direction = torch._foreach_add(grads, buf, alpha=momentum) if nesterov else buf
        torch._foreach_add_(params, direction, alpha=-lr)
        return SGDState(buf)

    return Optimizer(init, update)


class AdamWState(NamedTuple):
    count: int
    mu: list[torch.Tensor]
    nu: list[torch.Tensor]


def adamw(
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> Optimizer:
    """AdamW, torch.optim.AdamW's convention (decoupled decay, bias-corrected moments).

    θ ← θ(1 − hλ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
    θ ← θ − h m/(1−β₁ᵗ) / (√(v/(1−β₂ᵗ)) + ε).
    """
    lr = _positive("lr", lr)
    b1, b2 = betas
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be ≥ 0, got {weight_decay!r}")

    def init(params: list[torch.Tensor]) -> AdamWState:
        return AdamWState(0, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])

    def update(params, grads, state: AdamWState):
        t = state.count + 1
        if weight_decay:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)
        torch._foreach_lerp_(state.mu, grads, 1.0 - b1)
        torch._foreach_mul_(state.nu, b2)
        torch._foreach_addcmul_(state.nu, grads, grads, value=1.0 - b2)
        denom = torch._foreach_sqrt(state.nu)
        torch._foreach_div_(denom, math.sqrt(1.0 - b2**t))
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, state.mu, denom, value=-lr / (1.0 - b1**t))
        return AdamWState(t, state.mu, state.nu)

    return Optimizer(init, update)


NAMES = ("sgd", "momentum", "nesterov", "adamw")


def get(name: str, lr: float, **kwargs: Any) -> Optimizer:
    """An optimizer by name: ``sgd``, ``momentum`` (μ = 0.9 unless given), ``nesterov``, ``adamw``."""
    if name == "sgd":
        return sgd(lr, **kwargs)
    if name in ("momentum", "nesterov"):
        return sgd(lr, momentum=kwargs.pop("momentum", 0.9), nesterov=name == "nesterov")
    if name == "adamw":
        return adamw(lr, **kwargs)
    raise ValueError(f"optimizer: unknown optimizer {name!r}; choose one of {NAMES}")


def params_of(model: nn.Module) -> Params:
    """θ of a model: its parameters and floating buffers, detached copies, in a fixed order."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    theta.update({k: v.detach().clone() for k, v in model.named_buffers()})
    return theta


@dataclass(frozen=True)
class _Data:
    x: torch.Tensor
    y: torch.Tensor
    schedule: torch.Tensor  # [steps, batch_size] indices; row n − 1 is batch n


def network(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: torch.Tensor,
) -> StepMap:
    """The step map T_n(θ, state) = optimizer step on the loss of batch n of ``schedule``.

    ``model`` serves only as a stateless template (``functional_call``); θ is a dict from
    :func:`params_of`. The model is run in training mode (BatchNorm uses batch statistics and
    updates the chain's own running statistics).
    """
    if schedule.ndim != 2:
        raise ValueError(f"schedule must be [steps, batch_size], got shape {tuple(schedule.shape)}")
    data = _Data(x, y, schedule)
    names = [k for k, _ in model.named_parameters()]
    model.train()

    def init(theta: Params):
        return optimizer.init([theta[k] for k in names])

    def update(theta: Params, state, n: int):
        if not 1 <= n <= data.schedule.shape[0]:
            raise ValueError(f"batch index n={n} outside the schedule's 1..{data.schedule.shape[0]}")
        idx = data.schedule[n - 1]
        params = [theta[k].requires_grad_(True) for k in names]
        loss = loss_fn(functional_call(model, theta, (data.x[idx],)), data.y[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p in params:
                p.requires_grad_(False)
            state = optimizer.update(params, list(grads), state)
        return theta, state

    return StepMap(init, update, inplace=True)
