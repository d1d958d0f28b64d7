"""AGNES, the accelerated method of Gupta & Wojtowytsch (ICLR 2025), as transforms.

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

As transforms (:mod:`backward_lib.optim`) both are ``chain(trace(ρ, lookahead=c),
scale_by_learning_rate(η))``: Nesterov with c = μ, AGNES with c = ρα/η, since
x'_{n+1} = x'_n − η g'_n − αρ b_n = x'_n − η (g'_n + (α/η) ρ b_n). At α = η, c = ρ·(η/η) = ρ
exactly: the equivalence is structural (same composition, same bits), and tested numerically.
The optimizer state is the buffer b (``TraceState``); the paper's velocity is v = −ρ b.
"""

from __future__ import annotations

import torch

from .. import optim, tree
from ..optim import GradientTransformation, TraceState

__all__ = ["agnes", "from_nesterov", "velocity"]


def agnes(lr: float, alpha: float, rho: float) -> GradientTransformation:
    """AGNES with step η = ``lr``, look-ahead α = ``alpha`` and momentum ρ = ``rho``:
    b ← ρ b + g',  x' ← x' − η (g' + ρ(α/η) b)  (v = −ρ b: v ← ρ(v − g'), x' ← x' − ηg' + αv)."""
    return optim.agnes(lr, alpha, rho)


def from_nesterov(lr: float, momentum: float) -> GradientTransformation:
    """The AGNES form of torch's Nesterov SGD (lr, momentum μ): η = α = lr, ρ = μ."""
    return agnes(lr, alpha=lr, rho=momentum)


def velocity(state: tuple, rho: float) -> list[torch.Tensor]:
    """The paper's velocity v_n = −ρ b_n from an AGNES state (the chain's state tuple)."""
    (trace,) = [s for s in state if isinstance(s, TraceState)] or [None]
    if trace is None:
        raise ValueError("state: no momentum buffer in this state (rho = 0 keeps none; v = 0)")
    return [-rho * b for b in tree.leaves(trace.trace)]
