"""Chain-batched execution: many chains of one network advanced together with ``vmap``.

Independent chains (the backward iterates of consecutive recorded steps, the chains after a
reset) are G copies of one model with different batch sequences. Stacking their parameters
(as torch.func's model ensembling does) turns G small batch-8 steps into one batched step that
fills a GPU. Chains in a group start together; a chain that has applied all its batches is read
out and keeps stepping on its last batch until the longest chain ends (grouping consecutive
recorded steps keeps that waste small). Optimizer updates are elementwise, so the library's
optimizers run unchanged on stacked tensors; BatchNorm buffers are stacked too.

The sequential engine stays the reference: a test checks both give the same iterates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .engine import StepMap, evaluate, normalize_steps
from .maps import Optimizer
from .orders import Chain, Order

__all__ = ["run_chains", "batched_trajectory"]

Params = dict[str, torch.Tensor]


def _stack(theta: Params, g: int) -> Params:
    return {k: v.detach().unsqueeze(0).repeat(g, *[1] * v.dim()).clone() for k, v in theta.items()}


def run_chains(
    model: nn.Module,
    loss_fn: Callable,
    optimizer: Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: torch.Tensor,
    start: Params,
    batch_lists: list[list[int]] | list[range],
) -> list[Params]:
    """End points of chains that all start at ``start`` with fresh optimizer state and apply
    their own batch indices (1-based rows of ``schedule``), advanced together."""
    g = len(batch_lists)
    names = [k for k, _ in model.named_parameters()]
    state_names = [k for k in start if k not in names]
    theta = _stack(start, g)
    params = [theta[k] for k in names]
    opt_state = optimizer.init(params)
    lengths = [len(b) for b in batch_lists]
    table = torch.tensor([[b[min(t, len(b) - 1)] for t in range(max(lengths))] for b in batch_lists])
    model.train()

    def loss(p: Params, s: Params, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, {**p, **s}, (xb,)), yb)

    step_grad = vmap(grad(loss))
    out: list[Params | None] = [None] * g
    for t in range(max(lengths)):
        idx = schedule[table[:, t] - 1]  # [G, B]
        p = dict(zip(names, params, strict=True))
        s = {k: theta[k] for k in state_names}
        grads = step_grad(p, s, x[idx], y[idx])
        with torch.no_grad():
            opt_state = optimizer.update(params, [grads[k] for k in names], opt_state)
        for j, n in enumerate(lengths):
            if n == t + 1:
                out[j] = {k: v[j].clone() for k, v in theta.items()}
    return out  # type: ignore[return-value]


def batched_trajectory(
    T: StepMap,
    theta0: Params,
    order: Order,
    steps: int | Iterable[int],
    *,
    network: tuple,
    group: int = 16,
    on_apply: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Params]]:
    """Like :func:`backward_lib.engine.trajectory`, running chains in groups of ``group``.

    ``network`` = (model, loss_fn, optimizer, x, y, schedule): the pieces ``T`` was built from
    (:func:`backward_lib.maps.network`). Chains that extend the previous one (forward) gain
    nothing from batching and run through the sequential engine.
    """
    if group < 1:
        raise ValueError(f"group must be ≥ 1, got {group}")
    steps = normalize_steps(steps)
    order.validate(steps[-1])
    model, loss_fn, optimizer, x, y, sched = network
    pending: list[tuple[int, Chain]] = []
    starts: dict[Chain | None, Params] = {None: theta0}

    def flush() -> Iterator[tuple[int, Params]]:
        start = pending[0][1].start
        if start not in starts:  # a reset's start point: one sequential chain, cached
            starts[start] = evaluate(T, theta0, start)
        ends = run_chains(
            model, loss_fn, optimizer, x, y, sched, starts[start], [c.batches for _, c in pending]
        )
        yield from ((n, theta) for (n, _), theta in zip(pending, ends, strict=True))
        pending.clear()

    prev: Chain | None = None
    for n in steps:
        chain = order.chain(n)
        extends = (
            prev is not None
            and chain.start == prev.start
            and chain.batches[: len(prev.batches)] == prev.batches
        )
        if extends or len(chain.batches) == 0:
            raise ValueError(f"order: {order} shares work between chains; run it with the sequential engine")
        if pending and (chain.start != pending[0][1].start or len(pending) == group):
            yield from flush()
        pending.append((n, chain))
        prev = chain
    if pending:
        yield from flush()
