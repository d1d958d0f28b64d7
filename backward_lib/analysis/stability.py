"""The numbers behind "more stable": how much a learning curve and an iterate keep moving.

All functions read the tidy record frame (order, seed, step, metric, value, diverged) and
compare orders on the steps they have in common, so that a dense forward curve is never
compared with a sparse backward one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "common",
    "variation",
    "variation_ratio",
    "movement",
    "movement_table",
    "first_step_gap",
    "ratio_interval",
    "ratios",
    "endpoint_quantiles",
]


def common(
    df: pd.DataFrame, metric: str, orders: tuple[str, ...], *, lo: int = 0, hi: int | None = None
) -> pd.DataFrame:
    """Wide table [seed, step] × order of ``metric`` on the steps all ``orders`` recorded in (lo, hi]."""
    d = df[(df["metric"] == metric) & df["order"].isin(orders) & ~df["diverged"]]
    d = d[(d["step"] > lo) & ((d["step"] <= hi) if hi is not None else True)]
    wide = d.pivot_table(index=["seed", "step"], columns="order", values="value")
    return wide.dropna()[list(orders)]


def variation(df: pd.DataFrame, metric: str, orders: tuple[str, ...], **window) -> pd.DataFrame:
    """Mean step-to-step total variation, mean |v_{k+1} − v_k| over recorded steps, per seed."""
    wide = common(df, metric, orders, **window)
    return wide.groupby(level="seed").apply(lambda w: w.diff().abs().mean())


def variation_ratio(
    df: pd.DataFrame, metric: str, a: str = "forward", b: str = "backward", **window
) -> pd.Series:
    """Per seed: variation of order ``a`` divided by that of order ``b`` (> 1: ``b`` is smoother)."""
    v = variation(df, metric, (a, b), **window)
    return v[a] / v[b]


def movement(
    df: pd.DataFrame, orders: tuple[str, ...], *, lo: int = 0, hi: int | None = None
) -> pd.DataFrame:
    """Mean distance between consecutive recorded iterates per (seed, order): parameters
    (``increment``), predictions (``pred_change``) and logits (``logit_change``)."""
    rows = {}
    for metric in ("increment", "pred_change", "logit_change"):
        if (df["metric"] == metric).any():
            wide = common(df, metric, orders, lo=lo, hi=hi)
            rows[metric] = wide.groupby(level="seed").mean().stack()
    return pd.DataFrame(rows)


def endpoint_quantiles(
    df: pd.DataFrame, metric: str, *, late_from: int, backward: str = "backward"
) -> pd.Series:
    """Per seed: the quantile of the backward endpoint's ``metric`` within the forward values
    recorded after step ``late_from`` (all seeds pooled), the forward law it should sample."""
    ok = df[(df["metric"] == metric) & ~df["diverged"]]
    fwd = ok[(ok["order"] == "forward") & (ok["step"] > late_from)]["value"].to_numpy()
    if fwd.size == 0:
        raise ValueError(f"late_from: no forward records of {metric!r} after step {late_from}")
    last = ok[ok["order"] == backward].sort_values("step").groupby("seed")["value"].last()
    return last.apply(lambda v: float(np.mean(fwd <= v)))


def movement_table(
    df: pd.DataFrame,
    orders: tuple[str, ...],
    windows: dict[str, dict[str, int]] | None = None,
    curves: tuple[str, ...] = ("test_accuracy", "train_loss"),
) -> pd.DataFrame:
    """Per (window, seed, order): each curve's step-to-step variation and the movement measures.

    ``windows`` maps a label to step bounds, e.g. ``{"before reset": {"lo": 1, "hi": 1000},
    "after reset": {"lo": 1001}}``. By default the second half of training: the first steps
    fall steeply in every order and would swamp the step-to-step noise being compared.
    """
    parts = []
    half = int(df["step"].max()) // 2
    for label, w in (windows or {"second half": {"lo": half}}).items():
        cols = [
            variation(df, c, orders, **w).stack().rename(f"{c} variation")
            for c in curves
            if (df["metric"] == c).any()
        ]
        both = pd.concat([*cols, movement(df, orders, **w)], axis=1)
        both.index = both.index.set_names(["seed", "order"])
        parts.append(both.assign(window=label).set_index("window", append=True))
    table = pd.concat(parts).reorder_levels(["window", "seed", "order"])
    return table.sort_index(level=["window", "seed"], sort_remaining=False)


def first_step_gap(df: pd.DataFrame, metric: str = "train_loss") -> float:
    """Largest difference between orders at step 1, where every order is T_1(θ₀): must be 0."""
    first = df[(df["step"] == 1) & (df["metric"] == metric)]
    if first.empty:
        raise ValueError(f"metric: no records of {metric!r} at step 1")
    return float(first.groupby("seed")["value"].agg(lambda v: v.max() - v.min()).max())


def ratio_interval(
    table: pd.DataFrame, window: str, measure: str, a: str, b: str, level: float = 0.95
) -> dict[str, float]:
    """Per-seed ratios ``a``/``b`` of one measure in one window, and their two-sided ``level``
    interval for the mean over seeds: mean ± t_{(1+level)/2, k−1} s/√k (k seeds, Student t).

    With one seed there is no interval: ``low`` and ``high`` are NaN.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    m = table.xs(window)[measure].unstack()
    r = (m[a] / m[b]).to_numpy(dtype=float)
    k, mean = len(r), float(np.mean(r))
    if k < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "seeds": k}
    half = float(stats.t.ppf(0.5 + level / 2, k - 1) * np.std(r, ddof=1) / math.sqrt(k))
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": k}


def ratios(table: pd.DataFrame, a: str = "forward", b: str = "backward", level: float = 0.95) -> pd.DataFrame:
    """One row per (window, measure) of :func:`movement_table`: the mean over seeds of the
    ratio ``a``/``b`` and its two-sided ``level`` t-interval (> 1: ``a`` moves more)."""
    rows = [
        {"window": w, "measure": m, **ratio_interval(table, w, m, a, b, level)}
        for w in table.index.get_level_values("window").unique()
        for m in table.columns
    ]
    return pd.DataFrame(rows)
