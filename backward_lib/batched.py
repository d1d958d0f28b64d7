"""Chain-batched execution: many chains of one network advanced together with ``vmap``.

Independent chains (the backward iterates of consecutive recorded steps, the chains after a
reset) are G copies of one model with different batch sequences. Stacking their parameters,
buffers and optimizer states (as torch.func's model ensembling does) and vmapping the network's
one pure step (:attr:`backward_lib.maps.NetworkMap.step`) turns G small batch-8 steps into one
batched step that fills a GPU. Chains in a group start together; a chain that has applied all
its batches is read out and keeps stepping on its last batch until the longest chain ends
(grouping consecutive recorded steps keeps that waste small).

The sequential engine stays the reference: a test checks both give the same iterates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch.func import vmap

from .engine import evaluate, normalize_steps
from .maps import NetworkMap
from .orders import Chain, Order

__all__ = ["run_chains", "batched_trajectory"]

Params = dict[str, torch.Tensor]


def _stack(theta: Params, g: int) -> Params:
    return {k: v.detach().unsqueeze(0).repeat(g, *[1] * v.dim()).clone() for k, v in theta.items()}


def _network_map(T: object) -> NetworkMap:
    if not isinstance(T, NetworkMap):
        raise ValueError(f"T must be a maps.NetworkMap (from maps.network), got {type(T).__name__}")
    return T


def run_chains(T: NetworkMap, start: Params, batch_lists: list[list[int]] | list[range]) -> list[Params]:
    """End points of chains that all start at ``start`` with fresh optimizer state and apply
    their own batch indices (1-based rows of ``T.schedule``), advanced together:
    (θ, s)[g] ← T.step(θ[g], s[g], batch of chain g at time t), vmapped over g."""
    T = _network_map(T)
    if not batch_lists or any(len(b) == 0 for b in batch_lists):
        raise ValueError("batch_lists must be non-empty lists of batch indices")
    g = len(batch_lists)
    params, buffers = T.split(_stack(start, g))
    state = vmap(T.optimizer.init)(params)  # stacked state, counts included
    lengths = [len(b) for b in batch_lists]
    table = torch.tensor([[b[min(t, len(b) - 1)] for t in range(max(lengths))] for b in batch_lists])
    if int(table.min()) < 1 or int(table.max()) > T.schedule.shape[0]:
        raise ValueError(f"batch index outside the schedule's 1..{T.schedule.shape[0]}")
    step = vmap(T.step)
    out: list[Params | None] = [None] * g
    for t in range(max(lengths)):
        idx = T.schedule[table[:, t] - 1]  # [G, B]
        params, buffers, state = step(params, buffers, state, (T.x[idx], T.y[idx]))
        for j, n in enumerate(lengths):
            if n == t + 1:
                out[j] = {k: (params[k] if k in params else buffers[k])[j].clone() for k in start}
    return out  # type: ignore[return-value]


def batched_trajectory(
    T: NetworkMap,
    theta0: Params,
    order: Order,
    steps: int | Iterable[int],
    *,
    group: int = 16,
    on_apply: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Params]]:
    """Like :func:`backward_lib.engine.trajectory`, running chains in groups of ``group``.

    ``T`` is the :class:`~backward_lib.maps.NetworkMap` of :func:`backward_lib.maps.network`;
    its pure step is what runs, vmapped. Orders whose chains extend the previous one (forward)
    gain nothing from batching and are refused: run them with the sequential engine.
    """
    T = _network_map(T)
    if group < 1:
        raise ValueError(f"group must be ≥ 1, got {group}")
    steps = normalize_steps(steps)
    order.validate(steps[-1])
    pending: list[tuple[int, Chain]] = []
    starts: dict[Chain | None, Params] = {None: theta0}

    def flush() -> Iterator[tuple[int, Params]]:
        start = pending[0][1].start
        if start not in starts:  # a reset's start point: one sequential chain, cached
            starts[start] = evaluate(T, theta0, start)
        ends = run_chains(T, starts[start], [c.batches for _, c in pending])
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
