"""The two-timescale regime of Marion & Berthier (NeurIPS 2023): smooth-step neurons on [0, 1].

Model.  With σ the cubic smoothstep, σ(z) = 0 for z ≤ −½, 1 for z ≥ ½ and s²(3 − 2s) with
s = z + ½ in between (C¹, σ'(z) = 6s(1 − s)),

    f(x) = Σ_{j=0..m} a_j σ((x − u_j)/η),

where neuron 0 is a bias: u_0 = −η/2, so σ((x − u_0)/η) = 1 on [0, 1] and u_0 never moves
(σ' = 0 there). The target f* is piecewise constant (:class:`Target`).

Online SGD.  One sample per step, x ~ U[0, 1], y = f*(x) + ξ with ξ ~ U[−1, 1]; with
r = 2(f(x) − y), σ_j = σ((x − u_j)/η) and σ'_j = σ'((x − u_j)/η), both updates from the same
(a, u):

    a_j ← a_j − h r σ_j,        u_j ← u_j + ε h r a_j σ'_j / η,

i.e. a step h on the outer weights and εh on the positions, the gradient of (y − f(x))².
After p steps the slow time is τ = p ε h. :func:`online_sgd` is that step as an engine map
over R independent rows (repeats, or different ε), with the samples of step n fixed once
(:class:`Draws`), so that every composition order replays the same samples.

Two-timescale limit (ε → 0, then η → 0).  The outer weights sit at their optimum given the
positions: f is the mean of f* on each cell cut by the neurons (:func:`best_fit`), with
risk R(u) = ∫₀¹ (f* − f_u)². The positions follow du/dτ = −∇R(u); moving u_j by du swaps
f_R for f_L on a length du, so (envelope theorem)

    du_j/dτ = (f_R − f*(u_j))² − (f_L − f*(u_j))²       (:func:`limit_velocity`),

with f_L, f_R the fitted values left and right of u_j. Only neurons whose cell contains a
jump of f* move, toward the jump; a neuron on a jump stays (f*(J) is read as the midpoint).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..engine import StepMap

__all__ = [
    "CODE",
    "PAPER",
    "Draws",
    "Target",
    "best_fit",
    "covered",
    "init",
    "l2_error",
    "limit_path",
    "limit_risk",
    "limit_velocity",
    "network",
    "online_sgd",
    "smooth_step",
    "smooth_step_grad",
]


@dataclass(frozen=True)
class Target:
    """Piecewise-constant f*: ``values[k]`` on the k-th interval cut by ``jumps`` in [0, 1]."""

    jumps: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.jumps) + 1:
            raise ValueError(f"a target needs one value more than jumps, got {self.values}, {self.jumps}")
        if list(self.jumps) != sorted(self.jumps) or not all(0 < j < 1 for j in self.jumps):
            raise ValueError(f"jumps must be increasing inside (0, 1), got {self.jumps}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """f*(x); at a jump, the midpoint of the two values (the limit's convention)."""
        x = np.asarray(x, dtype=float)
        v = np.asarray(self.values)
        left = v[np.searchsorted(self.jumps, x, side="left")]
        right = v[np.searchsorted(self.jumps, x, side="right")]
        return 0.5 * (left + right)

    def integrals(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(∫₀ˣ f*, ∫₀ˣ f*²), exact: both are piecewise linear in x."""
        knots = np.array([0.0, *self.jumps, 1.0])
        v = np.asarray(self.values, dtype=float)
        width = np.diff(knots)
        f1 = np.concatenate([[0.0], np.cumsum(v * width)])
        f2 = np.concatenate([[0.0], np.cumsum(v**2 * width)])
        x = np.clip(x, 0.0, 1.0)
        return np.interp(x, knots, f1), np.interp(x, knots, f2)


# f = 1 on [0, .2], [.35, .5], [.65, .8]; 2 on [.5, .65]; 4 elsewhere (the paper's statement)
PAPER = Target((0.2, 0.35, 0.5, 0.65, 0.8), (1.0, 4.0, 1.0, 2.0, 1.0, 4.0))
# the authors' public code: same jumps, heights 1, 5, 1, 3, 1, 5
CODE = Target((0.2, 0.35, 0.5, 0.65, 0.8), (1.0, 5.0, 1.0, 3.0, 1.0, 5.0))


def smooth_step(z: torch.Tensor) -> torch.Tensor:
    """σ(z): 0 for z ≤ −½, 1 for z ≥ ½, s²(3 − 2s) with s = z + ½ between (autograd-able)."""
    s = (z + 0.5).clamp(0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def smooth_step_grad(z: torch.Tensor) -> torch.Tensor:
    """σ'(z) = 6 s (1 − s), s = clamp(z + ½, 0, 1)."""
    s = (z + 0.5).clamp(0.0, 1.0)
    return 6.0 * s * (1.0 - s)


def network(x: torch.Tensor, a: torch.Tensor, u: torch.Tensor, eta: float) -> torch.Tensor:
    """f(x) for every row: a, u of shape [R, M], x of shape [P] → [R, P]."""
    return torch.einsum("rm,rmp->rp", a, smooth_step((x[None, None, :] - u[:, :, None]) / eta))


def init(seeds: Sequence[int], m: int, eta: float) -> torch.Tensor:
    """θ₀ = (a, u) as one float64 tensor [2, R, m + 1]: a = 0, u_0 = −η/2, u_1..m sorted U[0, 1].

    Row r's positions depend only on ``seeds[r]`` (rows with equal seeds start equal).
    """
    theta = torch.zeros(2, len(seeds), m + 1, dtype=torch.float64)
    for r, seed in enumerate(seeds):
        u = np.sort(np.random.default_rng([int(seed), 0]).random(m))
        theta[1, r] = torch.from_numpy(np.concatenate([[-eta / 2], u]))
    return theta


class Draws:
    """The samples (x_n, y_n) of every row at step n, drawn once per chunk of steps.

    Row r's chunk c comes from a generator seeded by (seed_r, c + 1), so a sample depends only
    on (row seed, n), never on the order in which steps are visited: a backward chain reads the
    same samples as the forward pass. A few recent chunks are cached.
    """

    def __init__(self, target: Target, seeds: Sequence[int], chunk: int = 16384, noise: float = 1.0):
        self.target, self.seeds, self.chunk, self.noise = target, [int(s) for s in seeds], chunk, noise
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._last = -1

    def _draw(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for seed in self.seeds:
            rng = np.random.default_rng([seed, c + 1])
            x = rng.random(self.chunk)
            xs.append(x)
            ys.append(self.noise * (2.0 * rng.random(self.chunk) - 1.0))
        x = np.stack(xs, 1)  # [chunk, R]
        return x, self.target(x) + np.stack(ys, 1)

    def chunk_of(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of chunk c (steps c·chunk + 1 … (c + 1)·chunk), shape [chunk, R] each."""
        if c == self._last:
            return self._cache[c]
        self._last = c
        if c not in self._cache:
            self._cache[c] = self._draw(c)
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        self._cache.move_to_end(c)
        return self._cache[c]

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x_n, y_n) of every row at step n ≥ 1, shape [R] each."""
        if n < 1:
            raise ValueError(f"steps are numbered from 1, got {n}")
        c, k = divmod(n - 1, self.chunk)
        x, y = self.chunk_of(c)
        return x[k], y[k]


def _rows(value: float | Sequence[float], rows: int, name: str) -> np.ndarray:
    out = np.broadcast_to(np.asarray(value, dtype=float), (rows,)).copy()
    if not (np.all(np.isfinite(out)) and np.all(out > 0)):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return out


def online_sgd(
    target: Target,
    eta: float,
    h: float | Sequence[float],
    eps: float | Sequence[float],
    seeds: Sequence[int],
    *,
    noise: float = 1.0,
    chunk: int = 16384,
) -> StepMap:
    """The engine map of step n: one online SGD step on (x_n, y_n) for every row, in place.

    θ is the tensor of :func:`init` ([2, R, M]: a, then u). ``h`` and ``eps`` are scalars or one
    value per row. Gradients are in closed form (see the module docstring); the per-step work is
    a dozen numpy operations on [R, M] arrays, whatever R.
    """
    rows = len(seeds)
    draws = Draws(target, seeds, chunk, noise)
    h2 = 2.0 * _rows(h, rows, "h")  # ∂(y − f)²/∂a_j = 2 (f − y) σ_j
    eh12 = 6.0 * h2 * _rows(eps, rows, "eps") / eta  # 2 ε h σ'_j/η, σ' = 6 s (1 − s)
    inv_eta = 1.0 / eta
    s, t, q = (np.empty((rows, 0)) for _ in range(3))

    def update(theta: torch.Tensor, state: None, n: int) -> tuple[torch.Tensor, None]:
        nonlocal s, t, q
        x, y = draws.sample(n)
        a, u = theta.numpy()  # views: the update is in place on the chain's own copy
        if s.shape != a.shape:
            s, t, q = (np.empty_like(a) for _ in range(3))
        np.multiply(u, -inv_eta, out=s)
        s += (x * inv_eta + 0.5)[:, None]  # s = (x − u)/η + ½, clamped to [0, 1] below
        np.maximum(s, 0.0, out=s)
        np.minimum(s, 1.0, out=s)
        np.multiply(s, -2.0, out=t)
        t += 3.0
        t *= s
        t *= s  # t = σ_j = s² (3 − 2s)
        r = np.einsum("rm,rm->r", a, t)
        r -= y  # r = f(x) − y
        np.subtract(1.0, s, out=q)
        q *= s
        q *= a
        q *= (eh12 * r)[:, None]  # −εh ∂(y − f)²/∂u_j = 2 ε h (f − y) a_j σ'_j / η, old a
        t *= (h2 * r)[:, None]
        a -= t
        u += q
        return theta, None

    return StepMap(init=lambda theta: None, update=update, inplace=True)


def l2_error(theta: torch.Tensor, target: Target, eta: float, points: int = 4000) -> np.ndarray:
    """∫₀¹ (f* − f)² for every row, midpoint rule on ``points`` equal cells.

    With ``points`` a multiple of 20 the jumps at multiples of 0.05 are cell boundaries, so f* is
    constant on each cell and only f's smooth transitions carry quadrature error (O(1/points²)).
    """
    x = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    fstar = torch.from_numpy(target(x.numpy()))
    f = network(x, theta[0], theta[1], eta)
    return ((f - fstar) ** 2).mean(1).numpy()


def _cells(u: np.ndarray) -> np.ndarray:
    """Cell edges cut by positions u (bias excluded) in [0, 1]: 0, sorted clipped u, 1."""
    return np.concatenate([[0.0], np.sort(np.clip(u, 0.0, 1.0)), [1.0]])


def best_fit(target: Target, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edges, values): the best piecewise-constant fit of f* on the cells cut by u.

    ``u`` are the m moving positions (the bias excluded); each value is the mean of f* on its
    cell (any value on a cell of width 0).
    """
    edges = _cells(np.asarray(u, dtype=float))
    f1, _ = target.integrals(edges)
    width = np.diff(edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(width > 0, np.diff(f1) / width, target(edges[:-1]))
    return edges, values


def limit_risk(target: Target, u: np.ndarray) -> float:
    """R(u) = ∫₀¹ (f* − f_u)² with f_u the best fit: Σ_cells ∫f*² − (∫f*)²/width, exactly."""
    edges = _cells(np.asarray(u, dtype=float))
    f1, f2 = target.integrals(edges)
    width, i1, i2 = np.diff(edges), np.diff(f1), np.diff(f2)
    safe = np.where(width > 0, width, 1.0)
    return float(np.sum(np.where(width > 0, i2 - i1**2 / safe, 0.0)))


def limit_velocity(target: Target, u: np.ndarray) -> np.ndarray:
    """du_j/dτ = (f_R − f*(u_j))² − (f_L − f*(u_j))² = −∂R/∂u_j, in the order of ``u``."""
    u = np.asarray(u, dtype=float)
    order = np.argsort(u)
    _, values = best_fit(target, u)
    fs = target(np.clip(u[order], 0.0, 1.0))
    v_sorted = (values[1:] - fs) ** 2 - (values[:-1] - fs) ** 2
    inside = (u[order] > 0.0) & (u[order] < 1.0)  # a neuron outside [0, 1] feels no gradient
    out = np.empty_like(u)
    out[order] = np.where(inside, v_sorted, 0.0)
    return out


def limit_path(target: Target, u0: np.ndarray, taus: Sequence[float], dtau: float) -> np.ndarray:
    """Euler steps of du/dτ = −∇R(u) from u0 (bias excluded); positions at each τ in ``taus``.

    A neuron that would step across a jump of f* stops on it (the flow reaches a jump in finite
    time and stays there), as the authors' limit code does.
    """
    jumps = np.asarray(target.jumps)
    u = np.sort(np.asarray(u0, dtype=float))
    out, tau = [], 0.0
    for goal in sorted(taus):
        while tau < goal - 1e-12:
            dt = min(dtau, goal - tau)
            new = u + dt * limit_velocity(target, u)
            lo, hi = np.minimum(u, new), np.maximum(u, new)
            crossed = (jumps[None, :] >= lo[:, None]) & (jumps[None, :] <= hi[:, None])
            last = crossed.shape[1] - 1 - np.argmax(crossed[:, ::-1], 1)  # moving left: nearest jump
            first = np.where(new > u, np.argmax(crossed, 1), last)
            hit = crossed.any(1) & (new != u)
            u = np.sort(np.where(hit, jumps[first], new))
            tau += dt
        out.append(u.copy())
    return np.stack(out)


def covered(u: np.ndarray, target: Target, eta: float) -> np.ndarray:
    """Per row of u ([R, M], bias included or not): how many jumps have a neuron within η/2."""
    u = np.atleast_2d(np.asarray(u, dtype=float))
    near = np.abs(u[:, :, None] - np.asarray(target.jumps)[None, None, :]) <= eta / 2
    return near.any(1).sum(1)


def steps_for(tau: float, eps: float, h: float) -> int:
    """Steps p with slow time τ = p ε h."""
    return max(1, math.ceil(tau / (eps * h) - 1e-9))
