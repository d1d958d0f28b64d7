"""One engine for every composition order.

A chain is (start point, batch indices in application order); see :mod:`backward_lib.orders`.
The engine evaluates the chains of the recorded steps and never runs a map it does not need:

* a chain that extends the previous chain from the same start (forward: 1..n, then 1..n+1)
  continues from where that chain ended, so forward training is a single pass;
* start points (θ_r of a reset, the previous window) are computed once and cached;
* a chain whose iterate turns non-finite stops early: its result is reported as diverged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import tree
from .orders import Chain, Order

__all__ = ["StepMap", "count_applications", "iterate", "normalize_steps", "step_map", "trajectory"]

Theta = tree.Tree
State = Any


@dataclass(frozen=True)
class StepMap:
    """The map of batch n acting on (θ, state), as a pair of functions (optax-style).

    ``init(θ) -> state`` gives the fresh optimizer state at a chain's start;
    ``update(θ, state, n) -> (θ, state)`` applies the map of batch n (n ≥ 1).
    ``inplace`` says that ``update`` may overwrite θ and state; the engine then hands each
    chain its own copy of the start point and returns copies.
    """

    init: Callable[[Theta], State]
    update: Callable[[Theta, State, int], tuple[Theta, State]]
    inplace: bool = False


def step_map(T: Callable[[Theta, int], Theta] | StepMap) -> StepMap:
    """Wrap a plain step map ``T(θ, n) -> θ`` (pure, no optimizer state) as a :class:`StepMap`."""
    if isinstance(T, StepMap):
        return T
    if not callable(T):
        raise ValueError(f"T must be callable T(theta, n) or a StepMap, got {type(T).__name__}")
    return StepMap(init=lambda theta: None, update=lambda theta, state, n: (T(theta, n), None))


def normalize_steps(steps: int | Iterable[int]) -> list[int]:
    """``N`` means every step 1..N; an iterable is sorted and de-duplicated. Steps are ≥ 1."""
    if isinstance(steps, bool):
        raise ValueError(f"steps must be an int or an iterable of ints, got {steps!r}")
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        return list(range(1, steps + 1))
    out = sorted({int(s) for s in steps})
    if not out or out[0] < 1:
        raise ValueError(f"steps must be a non-empty collection of integers ≥ 1, got {out[:5]}")
    return out


class _Runner:
    """Evaluates chains with prefix sharing and a small cache of start points.

    With ``T=None`` it is a dry run that only counts map applications.
    """

    def __init__(self, T: StepMap | None, theta0: Theta, check_every: int = 64, on_apply=None):
        self.T, self.theta0, self.check_every, self.on_apply = T, theta0, check_every, on_apply
        self.applications = 0
        self.points: OrderedDict[Chain, Theta] = OrderedDict()  # recent chain end points
        # end points that later chains start from (θ_r of a reset, a window's start): kept apart
        # from ``points`` so that the steps inside a long window cannot evict their start
        self.starts: OrderedDict[Chain, Theta] = OrderedDict()
        # per start point: the last chain run from it, its end point and optimizer state
        self.frontier: OrderedDict[Chain | None, tuple[Chain, Theta, State]] = OrderedDict()

    def _copy(self, theta: Theta) -> Theta:
        return tree.clone(theta) if self.T is not None and self.T.inplace else theta

    @staticmethod
    def _remember(store: OrderedDict, key, value, size: int = 4) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > size:
            store.popitem(last=False)

    def _known(self, c: Chain) -> tuple[bool, Theta]:
        for store in (self.starts, self.points):
            if c in store:
                store.move_to_end(c)
                return True, store[c]
        return False, None

    def evaluate(self, chain: Chain) -> Theta:
        lineage = []  # chains to run, newest first, down to a known start
        c: Chain | None = chain
        theta = self.theta0
        while c is not None:
            found, point = self._known(c)
            if found:
                theta = point
                if c is not chain:  # a start point: keep it for the next steps
                    self._remember(self.starts, c, point)
                break
            lineage.append(c)
            c = c.start
        for c in reversed(lineage):
            theta = self._run(c, theta)
            point = self._copy(theta)
            self._remember(self.points, c, point)
            if c is not chain:
                self._remember(self.starts, c, point)
            theta = point
        return theta

    def _resume(self, chain: Chain) -> tuple[int, Theta, State]:
        """How much of ``chain`` the last chain from the same start has already applied."""
        prev = self.frontier.get(chain.start)
        if prev is not None:
            k = len(prev[0].batches)
            if k <= len(chain.batches) and chain.batches[:k] == prev[0].batches:
                return k, prev[1], prev[2]
        return 0, None, None

    def _run(self, chain: Chain, start_theta: Theta) -> Theta:
        done, theta, state = self._resume(chain)
        todo = chain.batches[done:]
        self.applications += len(todo)
        if self.T is not None:
            if done == 0:  # a fresh chain: own copy of the start, fresh optimizer state
                theta = self._copy(start_theta)
                state = self.T.init(theta)
            for i, n in enumerate(todo, 1):
                theta, state = self.T.update(theta, state, n)
                if i % self.check_every == 0 and not tree.all_finite(theta):
                    break  # diverged: non-finite values stay non-finite, stop paying for them
            if self.on_apply is not None and len(todo):
                self.on_apply(len(todo))
        self._remember(self.frontier, chain.start, (chain, theta, state))
        return theta


def trajectory(
    T: Callable[[Theta, int], Theta] | StepMap,
    theta0: Theta,
    order: Order,
    steps: int | Iterable[int],
    *,
    check_every: int = 64,
    on_apply: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Theta]]:
    """Yield ``(n, iterate of order at step n)`` for each recorded step, in increasing n.

    Memory stays bounded: iterates are produced one at a time, so recording thousands of
    steps of a large network never holds them all. ``on_apply(k)`` is told after each chain
    segment how many map applications it cost (for progress bars).
    """
    if not isinstance(order, Order):
        raise ValueError(f"order must be an orders.Order, got {type(order).__name__}")
    if check_every < 1:
        raise ValueError(f"check_every must be ≥ 1, got {check_every}")
    steps = normalize_steps(steps)
    order.validate(steps[-1])
    runner = _Runner(step_map(T), theta0, check_every, on_apply)
    for n in steps:
        yield n, runner.evaluate(order.chain(n))


def evaluate(T: Callable[[Theta, int], Theta] | StepMap, theta0: Theta, chain: Chain) -> Theta:
    """The end point of one chain (its start point evaluated first)."""
    return _Runner(step_map(T), theta0).evaluate(chain)


def count_applications(order: Order, steps: int | Iterable[int]) -> int:
    """Map applications the engine will make for these steps (a dry run, no tensors)."""
    steps = normalize_steps(steps)
    order.validate(steps[-1])
    runner = _Runner(None, None)
    for n in steps:
        runner.evaluate(order.chain(n))
    return runner.applications


def iterate(
    T: Callable[[Theta, int], Theta] | StepMap,
    theta0: Theta,
    order: Order,
    steps: int | Iterable[int],
    *,
    progress: bool = False,
    check_every: int = 64,
) -> dict[int, Theta]:
    """The iterates of ``order`` at the recorded ``steps``: ``{n: θ_n}`` in increasing n.

    ``T(θ, n)`` is the map of batch n (n = 1, 2, …) on a tensor or a dict of tensors, or a
    :class:`StepMap` carrying optimizer state. ``steps`` is N (all of 1..N) or an iterable.
    Example: ``iterate(T, x0, orders.backward(), 100)[100]`` is T_1 ∘ … ∘ T_100 (x0).
    """
    steps = normalize_steps(steps)  # once: a one-shot iterator must serve the bar and the run
    on_apply = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count_applications(order, steps), unit="step", desc=str(order))
        on_apply = bar.update
    try:
        return dict(trajectory(T, theta0, order, steps, check_every=check_every, on_apply=on_apply))
    finally:
        if bar is not None:
            bar.close()
