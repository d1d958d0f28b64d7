"""What to measure, and when: recording grids and metrics into a tidy DataFrame.

A metric is a function θ ↦ float. :func:`record` runs orders through the engine and returns
one row per (order, seed, step, metric) with ``value``; a recorded iterate whose value is not
finite is marked ``diverged`` (value NaN) so that plots can mark it instead of drawing NaN.
The metric ``"increment"`` is ‖θ_n − θ_m‖ between consecutive recorded steps m < n (from the
second recorded step on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from . import tree
from .engine import StepMap, count_applications, normalize_steps, trajectory
from .orders import Order

__all__ = ["COLUMNS", "accuracy_metric", "every", "log_grid", "loss_metric", "record"]

COLUMNS = ["order", "seed", "step", "metric", "value", "diverged"]
Metric = Callable[[tree.Tree], float]


def every(k: int, last: int, *, first: int = 1) -> list[int]:
    """Steps first, first + k, … up to and including ``last``."""
    if k < 1:
        raise ValueError(f"record_every must be ≥ 1, got {k}")
    return sorted({*range(first, last + 1, k), last})


def log_grid(last: int, points: int = 50) -> list[int]:
    """About ``points`` log-spaced steps in 1..last (always containing 1 and last)."""
    if last < 1 or points < 2:
        raise ValueError(f"log_grid needs last ≥ 1 and points ≥ 2, got {last}, {points}")
    return sorted({int(s) for s in np.unique(np.geomspace(1, last, points).round())} | {last})


def record(
    T: StepMap | Callable,
    theta0: tree.Tree,
    orders: Mapping[str, Order],
    steps: int | Iterable[int],
    metrics: Mapping[str, Metric],
    *,
    seed: int = 0,
    increment: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Tidy records of ``metrics`` along each order in ``orders`` (name → order)."""
    steps = normalize_steps(steps)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(count_applications(o, steps) for o in orders.values())
        bar = tqdm(total=total, unit="step", desc=f"seed {seed}")
    rows = []
    try:
        for name, order in orders.items():
            prev = None
            on_apply = bar.update if bar is not None else None
            for n, theta in trajectory(T, theta0, order, steps, on_apply=on_apply):
                finite = tree.all_finite(theta)
                values = {k: (f(theta) if finite else math.nan) for k, f in metrics.items()}
                if increment and prev is not None:
                    values["increment"] = tree.distance(theta, prev) if finite else math.nan
                prev = theta  # the engine never mutates an iterate it has handed out
                for k, v in values.items():
                    ok = finite and math.isfinite(v)
                    rows.append((name, seed, n, k, v if ok else math.nan, not ok))
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def _forward(model: nn.Module, theta, x: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([functional_call(model, theta, (x[i : i + chunk],)) for i in range(0, len(x), chunk)])


def loss_metric(
    model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096
) -> Metric:
    """θ ↦ mean loss on (x, y), the model in evaluation mode (BatchNorm: running statistics)."""

    @torch.no_grad()
    def metric(theta) -> float:
        model.eval()
        try:
            return float(loss_fn(_forward(model, theta, x, chunk), y))
        finally:
            model.train()

    return metric


def accuracy_metric(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> Metric:
    """θ ↦ fraction of (x, y) classified correctly, the model in evaluation mode."""

    @torch.no_grad()
    def metric(theta) -> float:
        model.eval()
        try:
            return float((_forward(model, theta, x, chunk).argmax(-1) == y).double().mean())
        finally:
            model.train()

    return metric
