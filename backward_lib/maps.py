"""The network step map: one optimizer step on (params, buffers, optimizer state, batch).

The step is written once, as a pure function (:func:`step`), from the two pieces
:mod:`backward_lib.objective` (the loss and its gradient, BatchNorm buffers included) and
:mod:`backward_lib.optim` (optimizers as composable transforms):

    g, (L, buffers') = ∇ L(params, buffers; batch);   u, s' = opt.update(g, s, params);
    params' = params + u.

Every path runs this function: the sequential engine (:func:`network`), chain batching
(:mod:`backward_lib.batched`, which vmaps :attr:`NetworkMap.step` over stacked chains),
realization ensembles (:mod:`backward_lib.ensemble`) and the order-average map
(:func:`backward_lib.analysis.approx.order_average`, the same step on another gradient).

:func:`network` turns (model, loss, optimizer, data, schedule) into an engine
:class:`~backward_lib.engine.StepMap` whose θ is the model's parameters *and buffers*
(BatchNorm running statistics travel with the chain), and whose n-th map uses batch n of the
schedule. Each chain starts with fresh optimizer state, as the paper's backward SGD does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import optim
from .engine import StepMap
from .objective import Objective, objective
from .optim import NAMES, GradientTransformation, adamw, get, sgd

__all__ = [
    "NAMES",
    "NetworkMap",
    "Optimizer",
    "adamw",
    "from_objective",
    "get",
    "network",
    "params_of",
    "sgd",
    "step",
]

Params = dict[str, torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
GradFn = Callable[[Params, Params, torch.Tensor, torch.Tensor], tuple[Params, tuple[torch.Tensor, Params]]]
Step = Callable[[Params, Params, Any, Batch], tuple[Params, Params, Any]]

Optimizer = GradientTransformation  # the old name: callers annotate with maps.Optimizer


def params_of(model: nn.Module) -> Params:
    """θ of a model: its parameters and floating buffers, detached copies, in a fixed order."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    theta.update({k: v.detach().clone() for k, v in model.named_buffers()})
    return theta


def step(gradient: GradFn, optimizer: GradientTransformation, *, inplace: bool = False) -> Step:
    """The step (params, buffers, state, (x, y)) ↦ (params + u, buffers', state'), with
    g, (L, buffers') = gradient(params, buffers, x, y) and u, state' = optimizer.update(g, state, params).

    ``gradient`` is :meth:`Objective.grad` for a plain training step. Pure by default; with
    ``inplace`` the new params overwrite ``params`` (:func:`optim.apply_updates`), which the
    sequential engine allows on a chain's own copy (the only difference: no new tensors).
    """

    def one(params: Params, buffers: Params, state: Any, batch: Batch) -> tuple[Params, Params, Any]:
        grads, (_, buffers) = gradient(params, buffers, *batch)
        params, state = optim.step_updates(optimizer, grads, state, params, inplace=inplace)
        return params, buffers, state

    return one


@dataclass(frozen=True, kw_only=True)
class NetworkMap(StepMap):
    """An engine step map that also exposes its pure parts, for vmapped execution.

    ``step(params, buffers, state, (x_B, y_B))`` is the one training step; ``batch(n)`` the
    data of batch n; ``optimizer.init`` the fresh state; ``objective`` the loss.
    """

    objective: Objective
    optimizer: GradientTransformation
    step: Step
    x: torch.Tensor
    y: torch.Tensor
    schedule: torch.Tensor  # [steps, batch_size] indices; row n − 1 is batch n

    def batch(self, n: int) -> Batch:
        """(x, y) of batch n (1-based row of the schedule)."""
        if not 1 <= n <= self.schedule.shape[0]:
            raise ValueError(f"batch index n={n} outside the schedule's 1..{self.schedule.shape[0]}")
        idx = self.schedule[n - 1]
        return self.x[idx], self.y[idx]

    def split(self, theta: Params) -> tuple[Params, Params]:
        """(params, buffers) of θ."""
        names = set(self.objective.names)
        return {k: v for k, v in theta.items() if k in names}, {
            k: v for k, v in theta.items() if k not in names
        }


def from_objective(
    obj: Objective,
    optimizer: GradientTransformation,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: torch.Tensor,
    gradient: GradFn | None = None,
) -> NetworkMap:
    """The NetworkMap of ``step(gradient or obj.grad, optimizer)`` on the batches of ``schedule``."""
    if not isinstance(optimizer, GradientTransformation):
        raise ValueError(f"optimizer must be an optim.GradientTransformation, got {type(optimizer).__name__}")
    if not torch.is_tensor(schedule) or schedule.ndim != 2:
        shape = tuple(schedule.shape) if torch.is_tensor(schedule) else type(schedule).__name__
        raise ValueError(f"schedule must be [steps, batch_size], got shape {shape}")
    one = step(gradient if gradient is not None else obj.grad, optimizer)
    # the engine's path: the same step applying its update in place on the chain's own copy
    # (measured faster on the CPU, see optim.apply_updates); ``T.step`` stays pure for vmap
    one_inplace = step(gradient if gradient is not None else obj.grad, optimizer, inplace=True)
    names = obj.names

    def init(theta: Params) -> Any:
        return optimizer.init({k: theta[k] for k in names})

    def update(theta: Params, state: Any, n: int) -> tuple[Params, Any]:
        params, buffers = T.split(theta)
        params, buffers, state = one_inplace(params, buffers, state, T.batch(n))
        return {k: params[k] if k in params else buffers[k] for k in theta}, state  # θ's key order

    T = NetworkMap(
        init=init, update=update, inplace=True, objective=obj, optimizer=optimizer, step=one,
        x=x, y=y, schedule=schedule,
    )  # fmt: skip
    return T


def network(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: GradientTransformation,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: torch.Tensor,
) -> NetworkMap:
    """The step map T_n(θ, state) = optimizer step on the loss of batch n of ``schedule``.

    ``model`` serves only as a stateless template (``functional_call``); θ is a dict from
    :func:`params_of`. The model is run in training mode (BatchNorm uses batch statistics and
    updates the chain's own running statistics). ``update`` writes θ's parameter tensors in
    place (``inplace=True``: the engine hands each chain its own copy); ``T.step`` is pure.
    """
    return from_objective(objective(model, loss_fn), optimizer, x, y, schedule)
