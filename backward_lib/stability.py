"""The numbers behind "more stable": how much a learning curve and an iterate keep moving.

All functions read the tidy record frame (order, seed, step, metric, value, diverged) and
compare orders on the steps they have in common, so that a dense forward curve is never
compared with a sparse backward one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["common", "variation", "variation_ratio", "movement", "endpoint_quantiles"]


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
