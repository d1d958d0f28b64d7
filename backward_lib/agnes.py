"""AGNES, the accelerated method of Gupta & Wojtowytsch (ICLR 2025), as an init/update pair.

With g'_n the gradient at the look-ahead point x'_n, v_0 = 0 and x'_0 = x_0:

    x_{n+1}  = x'_n − η g'_n
    v_{n+1}  = ρ (v_n − g'_n)
    x'_{n+1} = x_{n+1} + α v_{n+1}.

The parameters the model holds (and the engine composes) are the look-ahead points x'_n, where
gradients are taken; the optimizer state is the velocity v_n. Eliminating x_{n+1}:

    x'_{n+1} = x'_n − η g'_n + α v_{n+1}.

Nesterov as a special case.  torch.optim.SGD(lr, momentum=μ, nesterov=True, dampening=0)
keeps a buffer b ← μ b + g (b = g at the first step) and steps θ ← θ − lr (g + μ b). By
induction v_{n+1} = −ρ b_n (b_n the buffer after the step on g'_n), so the position update
reads x'_{n+1} = x'_n − η g'_n − αρ b_n, which is torch's step exactly when

    η = lr,   ρ = μ,   α = η = lr     (θ_n = x'_n,  b_n = −v_{n+1}/ρ).

With α ≠ η AGNES decouples the look-ahead from the step size (the paper's tuned α > η).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .maps import Optimizer

__all__ = ["AGNESState", "agnes", "from_nesterov"]


class AGNESState(NamedTuple):
    velocity: list[torch.Tensor] | None  # v_n; None stands for v_0 = 0 (before the first step)


def _number(name: str, value: float, low: float, high: float = math.inf) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value < high):
        raise ValueError(f"{name} must be a number in [{low}, {high}), got {value!r}")
    return float(value)


def agnes(lr: float, alpha: float, rho: float) -> Optimizer:
    """AGNES with step η = ``lr``, look-ahead α = ``alpha`` and momentum ρ = ``rho``.

    v ← ρ (v − g');   x' ← x' − η g' + α v   (in place on the parameters x').
    """
    lr = _number("lr", lr, 0.0)
    if lr == 0.0:
        raise ValueError("lr must be positive, got 0")
    alpha = _number("alpha", alpha, 0.0)
    rho = _number("rho", rho, 0.0, 1.0)

    def init(params: list[torch.Tensor]) -> AGNESState:
        return AGNESState(None)

    def update(params: list[torch.Tensor], grads: list[torch.Tensor], state: AGNESState) -> AGNESState:
        if state.velocity is None:
            velocity = torch._foreach_mul(grads, -rho)  # v_1 = ρ (0 − g'_0), a fresh tensor
        else:
            velocity = state.velocity
            torch._foreach_sub_(velocity, grads)
            torch._foreach_mul_(velocity, rho)
        torch._foreach_add_(params, grads, alpha=-lr)
        torch._foreach_add_(params, velocity, alpha=alpha)
        return AGNESState(velocity)

    return Optimizer(init, update)


def from_nesterov(lr: float, momentum: float) -> Optimizer:
    """The AGNES form of torch's Nesterov SGD (lr, momentum μ): η = α = lr, ρ = μ."""
    return agnes(lr, alpha=lr, rho=momentum)
