"""Shared fixtures: small non-commuting maps and a tiny float64 network problem."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from backward_lib import maps, models, schedule

# The tests use tiny tensors: one thread avoids thread start-up and contention on busy CI machines.
torch.set_num_threads(1)


@dataclass
class Affine:
    """T_n(x) = A_n x + b_n with random, non-commuting A_n (float64): every order gives a different point."""

    A: torch.Tensor
    b: torch.Tensor

    def __call__(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return self.A[n - 1] @ x + self.b[n - 1]


@pytest.fixture
def affine() -> Affine:
    g = torch.Generator().manual_seed(1234)
    n, d = 80, 3
    A = 0.6 * torch.randn(n, d, d, generator=g, dtype=torch.float64) / d**0.5
    b = torch.randn(n, d, generator=g, dtype=torch.float64)
    return Affine(A, b)


@pytest.fixture
def x0() -> torch.Tensor:
    return torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


@dataclass
class NetProblem:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    schedule: torch.Tensor
    loss_fn: nn.Module

    def theta0(self) -> dict[str, torch.Tensor]:
        return maps.params_of(self.model)

    def step_map(self, optimizer: maps.Optimizer):
        return maps.network(self.model, self.loss_fn, optimizer, self.x, self.y, self.schedule)

    def hand_chain(self, batches, make_opt=None, lr: float = 0.0) -> dict[str, torch.Tensor]:
        """Run ``batches`` (application order) on a fresh copy of the model.

        With ``make_opt`` a fresh torch.optim optimizer does the steps; otherwise a plain
        gradient step p ← p − lr ∇L written out by hand.
        """
        m = copy.deepcopy(self.model)
        m.train()
        opt = make_opt(m.parameters()) if make_opt is not None else None
        for n in batches:
            idx = self.schedule[n - 1]
            m.zero_grad(set_to_none=True)
            self.loss_fn(m(self.x[idx]), self.y[idx]).backward()
            if opt is not None:
                opt.step()
            else:
                with torch.no_grad():
                    for p in m.parameters():
                        p -= lr * p.grad
        return {k: v.detach().clone() for k, v in m.state_dict().items()}


def make_problem(model: nn.Module, n_points: int = 64, in_dim: int = 6, n_classes: int = 3, steps: int = 8):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n_points, in_dim, generator=g, dtype=torch.float64)
    y = torch.randint(0, n_classes, (n_points,), generator=g)
    sched = schedule.batches(n_points, 8, steps, seed=3)
    return NetProblem(model.double(), x, y, sched, nn.CrossEntropyLoss())


@pytest.fixture
def net() -> NetProblem:
    return make_problem(models.mlp(6, 3, depth=2, width=16, seed=0))


@pytest.fixture
def bn_net() -> NetProblem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return make_problem(model)


def assert_tree_close(a: dict, b: dict, atol: float, rtol: float = 0.0) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=rtol, msg=lambda m, k=k: f"{k}: {m}")


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
