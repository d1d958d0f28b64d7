"""The numbers behind "more stable": how much a learning curve and an iterate keep moving.

All functions read the tidy record frame (order, seed, step, metric, value, diverged) and
compare orders on the steps they have in common, so that a dense forward curve is never
compared with a sparse backward one. Movements between iterates are compared at one lag for
both orders (the probe's ``increment_lag10``, …), never at each order's own recording step.

Two measures of a curve's step-to-step variation: the raw mean |v_{k+1} − v_k|, which, while a
curve still falls, measures how fast it learns as much as how noisy it is, and the *jitter*,
the mean |v_{k+1} − 2 v_k + v_{k−1}| of second differences, which a smooth trend (linear over
three recorded steps) does not reach. Verdicts use the jitter; the raw measure stands beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "common",
    "decay",
    "mean_interval",
    "steps_to",
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


def variation(
    df: pd.DataFrame, metric: str, orders: tuple[str, ...], *, detrend: bool = False, **window
) -> pd.DataFrame:
    """Per seed: the mean step-to-step change |v_{k+1} − v_k| over the common recorded steps,
    or with ``detrend`` the jitter, the mean |v_{k+1} − 2 v_k + v_{k−1}| (module docstring)."""
    wide = common(df, metric, orders, **window)
    if detrend:
        return wide.groupby(level="seed").apply(lambda w: w.diff().diff().abs().mean())
    return wide.groupby(level="seed").apply(lambda w: w.diff().abs().mean())


def variation_ratio(
    df: pd.DataFrame, metric: str, a: str = "forward", b: str = "backward", **window
) -> pd.Series:
    """Per seed: variation of order ``a`` divided by that of order ``b`` (> 1: ``b`` is smoother)."""
    v = variation(df, metric, (a, b), **window)
    return v[a] / v[b]


MOVES = ("increment", "pred_change", "logit_change")


def movement(
    df: pd.DataFrame,
    orders: tuple[str, ...],
    *,
    lo: int = 0,
    hi: int | None = None,
    lag: int | None = None,
    suffix: str = "",
) -> pd.DataFrame:
    """Mean distance between iterates per (seed, order): parameters (``increment``), predictions
    (``pred_change``) and logits (``logit_change``); at ``lag`` steps apart (the probe's
    ``…_lag{k}`` metrics) or, without ``lag``, between consecutive recorded steps. ``suffix``
    picks a variant of the function-space metrics (``"_bnfix"``: BatchNorm statistics
    recomputed; parameters have no variant)."""
    rows = {}
    for metric in MOVES:
        name = (f"{metric}_lag{lag}" if lag else metric) + (suffix if metric != "increment" else "")
        if (df["metric"] == name).any():
            wide = common(df, name, orders, lo=lo, hi=hi)
            rows[metric] = wide.groupby(level="seed").mean().stack()
    return pd.DataFrame(rows)


def decay(df: pd.DataFrame, order: str, metric: str, *, lo: int = 0, hi: int | None = None) -> pd.Series:
    """Per seed, the slope b of log(value) = a + b log(step) over the recorded steps in (lo, hi]:
    how fast a movement shrinks along training (b < 0: it decays like n^b; b ≈ 0: it does not)."""
    d = df[(df["order"] == order) & (df["metric"] == metric) & ~df["diverged"]]
    d = d[(d["step"] > lo) & ((d["step"] <= hi) if hi is not None else True) & (d["value"] > 0)]
    if d.empty:
        raise ValueError(f"metric: no positive records of {metric!r} for {order!r} in ({lo}, {hi}]")
    return d.groupby("seed").apply(lambda g: float(np.polyfit(np.log(g["step"]), np.log(g["value"]), 1)[0]))


def steps_to(
    df: pd.DataFrame, metric: str, level: float, orders: tuple[str, ...], *, above: bool = True
) -> pd.DataFrame:
    """Per seed and order: the first common recorded step where ``metric`` reaches ``level``
    (≥ when ``above``, ≤ otherwise); NaN where it never does."""
    wide = common(df, metric, orders)
    reached = wide >= level if above else wide <= level

    def first(g: pd.DataFrame) -> pd.Series:
        steps = g.index.get_level_values("step")
        return pd.Series({o: float(steps[g[o].to_numpy()][0]) if g[o].any() else math.nan for o in g.columns})

    return reached.groupby(level="seed").apply(first)


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
    lag: int | None = None,
    suffix: str = "",
) -> pd.DataFrame:
    """Per (window, seed, order): each curve's raw variation and jitter, and the movements at
    ``lag`` (between consecutive recorded steps without it).

    ``suffix`` reads a variant of every metric but the parameter distance (see :func:`movement`);
    the columns keep the plain names. ``windows`` maps a label to step bounds, e.g.
    ``{"before reset": {"lo": 1, "hi": 1000}, "after reset": {"lo": 1001}}``. By default the
    second half of training: the first steps fall steeply in every order and would swamp the
    step-to-step noise being compared.
    """
    parts = []
    half = int(df["step"].max()) // 2
    for label, w in (windows or {"second half": {"lo": half}}).items():
        cols = []
        for c in curves:
            if (df["metric"] == c + suffix).any():
                cols.append(variation(df, c + suffix, orders, **w).stack().rename(f"{c} variation"))
                cols.append(
                    variation(df, c + suffix, orders, detrend=True, **w).stack().rename(f"{c} jitter")
                )
        both = pd.concat([*cols, movement(df, orders, lag=lag, suffix=suffix, **w)], axis=1)
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


def mean_interval(values, level: float = 0.95) -> dict[str, float]:
    """The mean of per-seed ``values`` and its two-sided ``level`` interval,
    mean ± t_{(1+level)/2, k−1} s/√k (k seeds, Student t); NaN ends with one seed."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    r = np.asarray(values, dtype=float)
    r = r[np.isfinite(r)]
    k = len(r)
    if k == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "seeds": 0}
    mean = float(np.mean(r))
    if k < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "seeds": k}
    half = float(stats.t.ppf(0.5 + level / 2, k - 1) * np.std(r, ddof=1) / math.sqrt(k))
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": k}


def ratio_interval(
    table: pd.DataFrame, window: str, measure: str, a: str, b: str, level: float = 0.95
) -> dict[str, float]:
    """Per-seed ratios ``a``/``b`` of one measure in one window, and their two-sided ``level``
    interval for the mean over seeds (:func:`mean_interval`)."""
    m = table.xs(window)[measure].unstack()
    return mean_interval((m[a] / m[b]).to_numpy(dtype=float), level)


def ratios(
    table: pd.DataFrame,
    a: str = "forward",
    b: str = "backward",
    level: float = 0.95,
    measures: list[str] | None = None,
) -> pd.DataFrame:
    """One row per (window, measure) of :func:`movement_table`: the mean over seeds of the
    ratio ``a``/``b`` and its two-sided ``level`` t-interval (> 1: ``a`` moves more).

    ``measures`` default: every column but the raw variations (the jitter decides; see the
    module docstring)."""
    measures = measures or [c for c in table.columns if not c.endswith(" variation")]
    rows = [
        {"window": w, "measure": m, **ratio_interval(table, w, m, a, b, level)}
        for w in table.index.get_level_values("window").unique()
        for m in measures
    ]
    return pd.DataFrame(rows)
