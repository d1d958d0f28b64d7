"""Approximations from Lemma C.1: the backward iterate from the forward one plus Lie brackets
(Appendix C), and the iteration-order average of small batches as one modified step (Appendix D).

Conventions. T_n(θ) = θ + h V_n(θ) with V_n = −g_n = −∇L_{B_n}; V' is the Jacobian of V, so
V'_n = −H_n (the batch Hessian). Applying T_{i_1} first and T_{i_k} last (Lemma C.1),

    T_{i_k} ∘ … ∘ T_{i_1}(θ) = θ + h Σ_a V_{i_a} + h² Σ_{a<b} V'_{i_b} V_{i_a} + O(h³),

so, with everything evaluated at θ₀ (Theorem C.2, Definition C.3),

    θ̃_n − θ_n = h² C_n + O(h³),   C_n = Σ_{i<j≤n} (H_i g_j − H_j g_i)(θ₀),

which is h² Σ_{i<j} [V_j, V_i] for the bracket [X, Y] = Y'X − X'Y. The corrected iterate is
θ̂_n = θ_n + h² C_n. :class:`BracketCorrection` accumulates C_n batch by batch (Corollary C.4).

Cost, against exact backward (b = batch size, N = training-set size). The exact iterate θ̃_n
costs n map applications (bn examples through a gradient); every step up to n costs bn²/2.
The correction costs one batch HVP per step (b examples) plus one HVP over the examples
seen so far, min(b(n−1), N) examples: every step (``mode="paper"``, Corollary C.4) or only
when C_n is read (``mode="deferred"``). Every step up to n: about bn²/2 HVP examples while
bn < N, then N per step — the same order as exact backward for the first pass over the data,
and linear in n after it. An HVP is about two gradients' work, but over many examples at once.

Appendix D: k SGD steps with learning rate h/k on the sub-batches B_1..B_k of a batch B,
averaged over all k! orders, are to O(h³) one gradient step with learning rate h on
L_B − (h/4)‖∇L_B‖² + (h/(4k²)) Σ_a ‖∇L_{B_a}‖² (:func:`modified_loss`, :func:`order_average`).

Hessian-vector products are exact (double backward), on a parameter dict as
:func:`maps.params_of` gives it or on a flat vector of :class:`curvature.FlatLoss`. Models
with BatchNorm are evaluated in training mode, on cloned buffers (θ₀ is never written).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from .. import engine, maps, optim, orders, record, tree
from ..engine import StepMap
from ..objective import Objective

__all__ = [
    "BracketCorrection",
    "Cost",
    "ExampleLoss",
    "approximate_backward",
    "compare",
    "corrected",
    "example_loss",
    "grad",
    "grad_and_hvp",
    "hvp",
    "lemma_term",
    "modified_loss",
    "order_average",
    "sub_batches",
]

Tree = tree.Tree


# ------------------------------------------------------------------ Hessian-vector products


def _rebuild(like: Tree, flat: Iterable[torch.Tensor | None]) -> Tree:
    """A tree shaped like ``like`` from its leaves in order (``None`` becomes zeros)."""
    it = iter(flat)

    def pick(t: torch.Tensor) -> torch.Tensor:
        v = next(it)
        return torch.zeros_like(t) if v is None else v.detach()

    return tree.tree_map(pick, like)


def grad_and_hvp(
    f: Callable[[Tree], torch.Tensor], theta: Tree, v: Tree, plus_grad: float = 0.0
) -> tuple[Tree, Tree]:
    """(g, H(v + s g)) with g = ∇f(θ), H = ∇²f(θ), s = ``plus_grad``, in one double backward:
    H(v + s g) = ∇_θ (⟨∇f(θ), v⟩ + (s/2)‖∇f(θ)‖²), the vector v held fixed.

    ``theta`` and ``v`` are a tensor or a dict of tensors with the same keys; every leaf of
    ``theta`` is differentiated (pass parameters only, no buffers).
    """
    p = tree.tree_map(lambda t: t.detach().requires_grad_(True), theta)
    xs = tree.leaves(p)
    gs = torch.autograd.grad(f(p), xs, create_graph=True, allow_unused=True)
    pairs = [(g, u) for g, u in zip(gs, tree.leaves(v), strict=True) if g is not None]
    dot = sum(((g * (u + 0.5 * plus_grad * g)).sum() for g, u in pairs), start=0.0)
    hv = torch.autograd.grad(dot, xs, allow_unused=True) if torch.is_tensor(dot) and dot.requires_grad else []
    return _rebuild(p, gs), _rebuild(p, hv or [None] * len(xs))


def grad(f: Callable[[Tree], torch.Tensor], theta: Tree) -> Tree:
    """∇f(θ) (every leaf of ``theta`` differentiated; works through double-backward losses)."""
    p = tree.tree_map(lambda t: t.detach().requires_grad_(True), theta)
    return _rebuild(p, torch.autograd.grad(f(p), tree.leaves(p), allow_unused=True))


def hvp(f: Callable[[Tree], torch.Tensor], theta: Tree, v: Tree) -> Tree:
    """The Hessian-vector product ∇²f(θ) v (exact, double backward)."""
    return grad_and_hvp(f, theta, v)[1]


# ---------------------------------------------------------------------- losses over examples


class ExampleLoss:
    """L_w(θ) = Σ_e w_e ℓ(θ; x_e, y_e) over example indices e with weights w_e.

    A batch's mean loss is w_e = 1/b on its b examples; Σ_{i<n} L_{B_i} is w_e = c_e/b with
    c_e the number of times example e appeared in batches 1..n−1. ``theta`` is a dict from
    :func:`maps.params_of` (the model's parameter entries are differentiated, buffers are
    held fixed) or, with ``flat``, a flat vector of a :class:`curvature.FlatLoss`. The losses
    are :meth:`backward_lib.objective.Objective.weighted`, the network's one loss function.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *, flat=None):
        self.model, self.x, self.y, self.flat = model, x, y, flat
        self.objective = Objective(model, loss_fn)
        self.names = list(self.objective.names)
        self.chunk = 4096  # examples per forward pass: weighted sums are linear, so chunks add

    @classmethod
    def from_flat(cls, flat) -> ExampleLoss:
        """The same losses with θ the flat vector w of a :class:`curvature.FlatLoss`."""
        return cls(flat.model, flat.loss_fn, flat.x, flat.y, flat=flat)

    def variables(self, theta: Tree) -> Tree:
        """The differentiated part of θ: the parameter entries, or the flat vector."""
        return theta if self.flat is not None else {k: theta[k] for k in self.names}

    def _split(self, p: Tree, theta: Tree) -> tuple[dict, dict]:
        if self.flat is not None:
            return self.flat.unpack(p), self.flat.buffers
        return p, {k: v for k, v in theta.items() if k not in p}  # buffers: held fixed

    def function(self, theta: Tree, idx: torch.Tensor, weights: torch.Tensor | float) -> Callable:
        """p ↦ Σ_e w_e ℓ_e(p) on ``idx`` (p: the variables of θ; buffers taken from θ)."""

        def f(p: Tree) -> torch.Tensor:
            params, buffers = self._split(p, theta)
            total = 0.0
            for s in range(0, len(idx), self.chunk):
                i = idx[s : s + self.chunk]
                w = weights[s : s + self.chunk] if torch.is_tensor(weights) else weights
                total = total + self.objective.weighted(params, buffers, self.x[i], self.y[i], w)
            return total

        return f

    def batch(self, theta: Tree, idx: torch.Tensor) -> Callable:
        """p ↦ L_B(p), the mean loss of the batch ``idx``."""
        return self.function(theta, idx, 1.0 / len(idx))


def example_loss(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor) -> ExampleLoss:
    """Weighted per-example losses of ``model`` on (x, y), θ a parameter dict."""
    return ExampleLoss(model, loss_fn, x, y)


# ---------------------------------------------------------------- Lie-bracket correction (C)


def _add(a: Tree, b: Tree) -> Tree:
    return tree.tree_map(torch.add, a, b)


@dataclass
class Cost:
    """Work done: HVPs (each also gives the gradient), the examples they went through, seconds."""

    hvps: int = 0
    hvp_examples: int = 0
    seconds: float = 0.0


@dataclass
class BracketCorrection:
    """C_n = Σ_{i<j≤n} (H_i g_j − H_j g_i)(θ₀), one batch at a time (Corollary C.4).

    With G_n = Σ_{i≤n} g_i, P_n = Σ_{i<j≤n} H_j g_i and Q_n = Σ_{i<j≤n} H_i g_j, C_n = Q_n − P_n:

    * ``mode="paper"`` (Corollary C.4): P_n = P_{n−1} + H_n G_{n−1} (one batch HVP) and
      Q_n = Q_{n−1} + H_{<n} g_n, H_{<n} = Σ_{i<n} H_i the Hessian of the count-weighted loss on
      the examples of batches 1..n−1 (one HVP over at most the whole data set), every step.
    * ``mode="deferred"``: S_n = S_{n−1} + H_n(2G_{n−1} + g_n) (one batch HVP per step) and,
      only when C_n is read, C_n = H_{≤n} G_n − S_n (one HVP over the examples seen): since
      Σ_{i,j≤n} H_i g_j = Q_n + P_n + Σ_j H_j g_j and S_n = 2P_n + Σ_j H_j g_j.

    Memory: two or three parameter-sized vectors and one count per training example.
    """

    loss: ExampleLoss
    theta0: Tree
    schedule: torch.Tensor  # [steps, b]; row n − 1 is batch n
    mode: str = "paper"
    n: int = 0
    cost: Cost = field(default_factory=Cost)

    def __post_init__(self) -> None:
        if self.mode not in ("paper", "deferred"):
            raise ValueError(f"mode must be 'paper' or 'deferred', got {self.mode!r}")
        zero = tree.tree_map(torch.zeros_like, self.loss.variables(self.theta0))
        self.G, self.A, self.B = zero, zero, zero  # paper: A = P, B = Q; deferred: A = S
        self.counts = torch.zeros(len(self.loss.x), dtype=torch.long, device=self.schedule.device)
        self._read: tuple[int, Tree] | None = None

    def _hvp(self, idx: torch.Tensor, weights, v: Tree, plus_grad: float = 0.0) -> tuple[Tree, Tree]:
        self.cost.hvps += 1
        self.cost.hvp_examples += len(idx)
        f = self.loss.function(self.theta0, idx, weights)
        return grad_and_hvp(f, self.loss.variables(self.theta0), v, plus_grad)

    def _seen(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.nonzero(self.counts).squeeze(1)
        return idx, self.counts[idx].to(self.loss.x.dtype) / self.schedule.shape[1]

    def _step(self) -> None:
        idx = self.schedule[self.n]  # batch n + 1
        if self.mode == "paper":
            g, hG = self._hvp(idx, 1.0 / len(idx), self.G)
            self.A = _add(self.A, hG)  # P_n = P_{n−1} + H_n G_{n−1}
            if self.n > 0:
                self.B = _add(self.B, self._hvp(*self._seen(), g)[1])  # Q_n = Q_{n−1} + H_{<n} g_n
        else:  # S_n = S_{n−1} + H_n(2G_{n−1} + g_n), g_n from the same pass
            g, h = self._hvp(idx, 1.0 / len(idx), tree.tree_map(lambda u: 2 * u, self.G), 1.0)
            self.A = _add(self.A, h)
        self.G = _add(self.G, g)
        self.counts[idx] += 1
        self.n += 1

    def advance(self, to: int) -> None:
        """Take in batches n + 1, …, ``to``."""
        if not self.n <= to <= self.schedule.shape[0]:
            raise ValueError(f"advance: to={to} outside {self.n}..{self.schedule.shape[0]}")
        t0 = time.perf_counter()
        while self.n < to:
            self._step()
        self.cost.seconds += time.perf_counter() - t0

    def value(self) -> Tree:
        """C_n for the batches taken in so far (zeros for n ≤ 1)."""
        if self.mode == "paper":
            return tree.tree_map(lambda q, p: q - p, self.B, self.A)
        if self._read is None or self._read[0] != self.n:
            t0 = time.perf_counter()
            c = self.G if self.n == 0 else self._hvp(*self._seen(), self.G)[1]
            self._read = (self.n, tree.tree_map(lambda u, s: u - s, c, self.A))
            self.cost.seconds += time.perf_counter() - t0
        return self._read[1]


def corrected(theta: Tree, correction: Tree, lr: float) -> Tree:
    """θ̂ = θ + h² C on the corrected entries (the others, e.g. buffers, are copied)."""
    if torch.is_tensor(theta):
        return theta + lr**2 * correction
    return {k: (v + lr**2 * correction[k]) if k in correction else v.clone() for k, v in theta.items()}


def approximate_backward(
    T: StepMap, theta0: Tree, correction: BracketCorrection, lr: float, steps: int | Iterable[int]
) -> Iterator[tuple[int, Tree]]:
    """Yield (n, θ̂_n = θ_n + h² C_n): the forward iterates of the engine, corrected."""
    for n, theta in engine.trajectory(T, theta0, orders.forward(), steps):
        correction.advance(n)
        yield n, corrected(theta, correction.value(), lr)


def _timed(it: Iterator, clock: list[float]) -> Iterator:
    """Yield from ``it``, adding the seconds spent producing each item to ``clock[0]``."""
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            clock[0] += time.perf_counter() - t0
        yield item


def compare(
    T: StepMap,
    theta0: Tree,
    correction: BracketCorrection,
    lr: float,
    steps: int | Iterable[int],
    probe: Callable[[], Callable[[Tree], dict[str, float]]],
    *,
    seed: int = 0,
    backward: Iterator[tuple[int, Tree]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forward, exact backward and approximate backward iterates at ``steps``, in lockstep.

    ``probe()`` gives one order's metric function θ ↦ {name: value} (called once per order,
    e.g. a fresh :class:`~backward_lib.probe.NetworkProbe`). Returns tidy records
    (``record.COLUMNS``: the metrics plus ``to_backward`` = ‖·_n − θ̃_n‖ over the corrected
    entries) and a cost table: seconds spent producing each order's iterates (metrics
    excluded), map applications and HVPs. ``backward`` replaces the sequential engine's
    backward iterates at ``steps`` (e.g. :func:`~backward_lib.batched.batched_trajectory`).
    """
    steps = engine.normalize_steps(steps)
    clocks = {name: [0.0] for name in ("forward", "backward", "approx. backward")}
    runs = {
        "forward": engine.trajectory(T, theta0, orders.forward(), steps),
        "backward": backward or engine.trajectory(T, theta0, orders.backward(), steps),
        "approx. backward": approximate_backward(T, theta0, correction, lr, steps),
    }
    its = {name: _timed(it, clocks[name]) for name, it in runs.items()}
    measure = {name: probe() for name in runs}
    part = correction.loss.variables  # the corrected entries (buffers are not)
    rows = []
    for (n, fwd), (_, bwd), (_, hat) in zip(*its.values(), strict=True):
        for name, theta in (("forward", fwd), ("backward", bwd), ("approx. backward", hat)):
            values = dict(measure[name](theta))
            if name != "backward":
                values["to_backward"] = tree.distance(part(theta), part(bwd))
            rows += [(name, seed, n, m, v, not math.isfinite(v)) for m, v in values.items()]
    maps_ = {name: engine.count_applications(o, steps) for name, o in
             (("forward", orders.forward()), ("backward", orders.backward()))}  # fmt: skip
    maps_["approx. backward"] = maps_["forward"]
    costs = pd.DataFrame(
        [{"order": k, "seconds": c[0], "map applications": maps_[k],
          "HVPs": correction.cost.hvps if k.startswith("approx") else 0,
          "HVP examples": correction.cost.hvp_examples if k.startswith("approx") else 0}
         for k, c in clocks.items()]
    )  # fmt: skip
    return pd.DataFrame(rows, columns=record.COLUMNS), costs


def lemma_term(loss: ExampleLoss, theta: Tree, batches: Iterable[torch.Tensor]) -> Tree:
    """Σ_{a<b} H_b g_a at θ for batches in application order: for SGD steps with learning rate
    h, T_{B_k} ∘ … ∘ T_{B_1}(θ) = θ − h Σ_a g_a + h² Σ_{a<b} H_b g_a + O(h³) (Lemma C.1)."""
    p = loss.variables(theta)
    G = tree.tree_map(torch.zeros_like, p)
    out = tree.tree_map(torch.zeros_like, p)
    for idx in batches:
        g, hG = grad_and_hvp(loss.batch(theta, idx), p, G)  # H_b Σ_{a<b} g_a
        out, G = _add(out, hG), _add(G, g)
    return out


# ------------------------------------------------------------ iteration-order average (D.2)


def sub_batches(idx: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Split a batch into k consecutive sub-batches of equal size b/k."""
    if k < 1 or len(idx) % k:
        raise ValueError(f"k must divide the batch size {len(idx)}, got k={k}")
    return list(idx.view(k, -1))


def modified_loss(
    loss: ExampleLoss, theta: Tree, idx: torch.Tensor, lr: float, k: int, lam: float = 1.0
) -> Callable[[Tree], torch.Tensor]:
    """p ↦ L_B − λ(h/4)‖∇L_B‖² + λ(h/(4k²)) Σ_a ‖∇L_{B_a}‖² (differentiable, for double backward).

    With λ = 1 one gradient step on it is, to O(h³), the average over all k! orders of k SGD
    steps with learning rate h/k on the sub-batches B_1..B_k of B (Appendix D.2).
    """
    parts = sub_batches(idx, k)

    def f(p: Tree) -> torch.Tensor:
        losses = [loss.batch(theta, i)(p) for i in parts]
        L = sum(losses) / k  # equal sub-batch sizes: L_B is the mean of the L_{B_a}
        if lam == 0:
            return L
        xs = tree.leaves(p)
        ga = [torch.autograd.grad(la, xs, create_graph=True) for la in losses]
        gB = [sum(gs) / k for gs in zip(*ga, strict=True)]
        sq = lambda gs: sum((g * g).sum() for g in gs)  # noqa: E731
        return L + lam * lr * (-sq(gB) / 4 + sum(sq(g) for g in ga) / (4 * k * k))

    return f


def order_average(
    model: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: torch.Tensor,
    lr: float,
    k: int,
    lam: float = 1.0,
    optimizer: optim.GradientTransformation | None = None,
) -> maps.NetworkMap:
    """The step map of batch n: the network's one step (:func:`backward_lib.maps.step`; SGD
    with lr h by default) on the gradient of :func:`modified_loss` of batch n of ``schedule``
    (λ = 0: plain large-batch SGD). Buffers (BatchNorm statistics) are held fixed."""
    if not torch.is_tensor(schedule) or schedule.ndim != 2 or schedule.shape[1] % k:
        shape = tuple(schedule.shape) if torch.is_tensor(schedule) else type(schedule).__name__
        raise ValueError(f"schedule must be [steps, b] with k={k} dividing b, got {shape}")
    opt = optimizer if optimizer is not None else optim.sgd(lr)

    def gradient(params: Tree, buffers: Tree, xb: torch.Tensor, yb: torch.Tensor):
        """∇ of the modified loss of the batch (xb, yb), by double backward."""
        loss = ExampleLoss(model, loss_fn, xb, yb)
        theta = {**params, **buffers}
        p = {k_: v.detach().requires_grad_(True) for k_, v in params.items()}
        f = modified_loss(loss, theta, torch.arange(len(xb), device=xb.device), lr, k, lam)
        value = f(p)
        grads = torch.autograd.grad(value, list(p.values()))
        return dict(zip(p, grads, strict=True)), (value.detach(), buffers)

    return maps.from_objective(Objective(model, loss_fn), opt, x, y, schedule, gradient=gradient)
