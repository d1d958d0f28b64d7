"""Composition orders as data.

An order says, for every recorded step n, which point a chain starts from and which batch
indices it applies, in application order. The engine never needs to know an order's name.

With T_n the step map of batch n and θ₀ the initial point:

* forward:  θ_n = T_n ∘ … ∘ T_1(θ₀)            chain (θ₀; 1, 2, …, n)
* backward: θ̃_n = T_1 ∘ … ∘ T_n(θ₀)            chain (θ₀; n, n−1, …, 1)
* reset(r): θ̃_n = T_{r+1} ∘ … ∘ T_n(θ_r)        chain (θ_r; n, …, r+1) for n > r, backward before
* delayed(s): forward up to s, then           chain (θ_s; n, …, s+1)
* window(W): reset every W steps               chain (θ_{r(n)}; n, …, r(n)+1), r(n) = W⌊(n−1)/W⌋

A start point is itself a chain (``None`` is θ₀), so a chain that starts at a forward or a
backward iterate is just data, and the engine computes and caches that start once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "NAMES",
    "Chain",
    "Order",
    "backward",
    "delayed",
    "forward",
    "get",
    "reset",
    "window",
]

Start = Literal["forward", "backward", "window"]


@dataclass(frozen=True)
class Chain:
    """Apply ``batches`` (1-based batch indices, in application order) starting at ``start``.

    ``start`` is ``None`` for θ₀, or another chain whose end point is the start. Batch index
    sequences are kept as ``range`` objects where possible: O(1) memory, hashing and slicing.
    """

    start: Chain | None
    batches: Sequence[int]

    # Chains of chained windows nest thousands deep: hash once (the start's hash is cached) and
    # compare and count iteratively, so no method recurses down the nesting.
    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.start, self.batches)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        a: Chain | None = self
        b = other
        while a is not b:
            if not isinstance(a, Chain) or not isinstance(b, Chain):
                return False
            if a._hash != b._hash or a.batches != b.batches:  # type: ignore[attr-defined]
                return False
            a, b = a.start, b.start
        return True

    def __len__(self) -> int:
        return len(self.batches)

    def cost(self) -> int:
        """Map applications needed from θ₀, counting the start's own chain."""
        total, c = 0, self
        while c is not None:
            total, c = total + len(c.batches), c.start
        return total


def _forward_chain(n: int) -> Chain:
    return Chain(None, range(1, n + 1))


def _backward_chain(n: int) -> Chain:
    return Chain(None, range(n, 0, -1))


def _start_chain(start: Start, r: int) -> Chain:
    return _forward_chain(r) if start == "forward" else _backward_chain(r)


@dataclass(frozen=True)
class Order:
    """A composition order: a name, its settings and ``chain(n)`` for every step n ≥ 1."""

    name: str
    reset_at: int | None = None  # reset / delayed switch step r
    every: int | None = None  # window length W
    start: Start = "forward"  # which iterate a reset chain starts from
    backward_before: bool = True  # reset: backward before r; delayed: forward before s
    _windows: dict[int, Chain] = field(default_factory=dict, init=False, repr=False, compare=False)

    def chain(self, n: int) -> Chain:
        """The chain whose end point is this order's iterate at step ``n``."""
        if n < 1:
            raise ValueError(f"steps must be ≥ 1, got step {n}")
        if self.name == "forward":
            return _forward_chain(n)
        if self.name == "backward":
            return _backward_chain(n)
        if self.name in ("reset", "delayed"):
            r = self.reset_at
            assert r is not None
            if n <= r:
                return _backward_chain(n) if self.backward_before else _forward_chain(n)
            return Chain(_start_chain(self.start, r), range(n, r, -1))
        if self.name == "window":
            w = self.every
            assert w is not None
            r = w * ((n - 1) // w)
            if r == 0:
                return _backward_chain(n)
            start = _forward_chain(r) if self.start == "forward" else self._window_chain(r)
            return Chain(start, range(n, r, -1))
        raise ValueError(f"order: unknown order {self.name!r}; choose one of {NAMES}")

    def _window_chain(self, r: int) -> Chain:
        """This order's own chain at window end r (a multiple of W), built without recursion.

        Windows are memoized, so consecutive steps share their start chains (and the engine's
        cache lookups stop at the first, identical, start).
        """
        w, memo = self.every, self._windows
        assert w is not None
        lo = r
        while lo > 0 and lo not in memo:
            lo -= w
        c = memo.get(lo)
        while lo < r:
            lo += w
            c = memo[lo] = Chain(c, range(lo, lo - w, -1))
        assert c is not None
        return c

    def validate(self, last_step: int) -> None:
        """Raise a ValueError naming the parameter if the order cannot run up to ``last_step``."""
        if self.reset_at is not None and not 1 <= self.reset_at <= last_step - 1:
            param = "at" if self.name == "reset" else "after"
            raise ValueError(
                f"{self.name}: {param}={self.reset_at} is outside 1..steps-1 = 1..{last_step - 1}"
            )

    def __str__(self) -> str:
        if self.name == "reset":
            return f"reset(at={self.reset_at}, start={self.start})"
        if self.name == "delayed":
            return f"delayed(after={self.reset_at})"
        if self.name == "window":
            return f"window({self.every}, start={self.start})"
        return self.name


def forward() -> Order:
    """Ordinary training: θ_n = T_n ∘ … ∘ T_1(θ₀)."""
    return Order("forward")


def backward() -> Order:
    """Backward composition: θ̃_n = T_1 ∘ … ∘ T_n(θ₀)."""
    return Order("backward")


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def reset(at: int, start: Start = "forward") -> Order:
    """Backward until step ``at`` = r, then backward from θ_r: θ̃_n = T_{r+1} ∘ … ∘ T_n(θ_r).

    ``start`` picks which iterate at r the later chains start from: the forward θ_r (the paper's
    Figure 3, as we read it) or the backward θ̃_r.
    """
    if start not in ("forward", "backward"):
        raise ValueError(f"reset: start must be 'forward' or 'backward', got {start!r}")
    return Order("reset", reset_at=_check_int("at", at, 1), start=start)


def delayed(after: int) -> Order:
    """Forward until step ``after`` = s, then backward from the forward θ_s (Appendix A.6)."""
    return Order("delayed", reset_at=_check_int("after", after, 1), backward_before=False)


def window(every: int, start: Literal["forward", "window"] = "forward") -> Order:
    """Periodic reset every ``every`` = W steps; each iterate costs at most W map applications.

    ``start="forward"`` restarts each window at the forward iterate; ``start="window"`` at this
    order's own iterate at the window's start (windows chained end to end).
    """
    if start not in ("forward", "window"):
        raise ValueError(f"window: start must be 'forward' or 'window', got {start!r}")
    return Order("window", every=_check_int("every", every, 1), start=start)


NAMES = ("forward", "backward", "reset", "delayed", "window")


def get(name: str, **kwargs: int | str) -> Order:
    """An order by name, e.g. ``get("reset", at=1000)``; unknown names raise a ValueError."""
    factories = {
        "forward": forward,
        "backward": backward,
        "reset": reset,
        "delayed": delayed,
        "window": window,
    }
    if name not in factories:
        raise ValueError(f"order: unknown order {name!r}; choose one of {NAMES}")
    return factories[name](**kwargs)  # type: ignore[operator]


def parse(spec: str) -> Order:
    """An order from a short spec: ``forward``, ``backward``, ``reset:1000``,
    ``reset:1000:backward``, ``delayed:1000``, ``window:100`` or ``window:100:window``."""
    name, *args = spec.split(":")
    try:
        if name in ("forward", "backward") and not args:
            return get(name)
        if name == "reset" and len(args) in (1, 2):
            return reset(int(args[0]), *args[1:])  # type: ignore[arg-type]
        if name == "delayed" and len(args) == 1:
            return delayed(int(args[0]))
        if name == "window" and len(args) in (1, 2):
            return window(int(args[0]), *args[1:])  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"order: bad order spec {spec!r}: {err}") from err
    raise ValueError(f"order: unknown order spec {spec!r}; e.g. 'backward', 'reset:1000', 'window:100'")
