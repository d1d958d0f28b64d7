"""The stability measures on hand-made records whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backward_lib.analysis import stability


def frame(amplitudes: dict[str, float], seeds=(0, 1, 2), steps=range(1, 21)) -> pd.DataFrame:
    """Curves that alternate ±amplitude around a trend: variation = 2·amplitude exactly."""
    rows = []
    for seed in seeds:
        for order, amp in amplitudes.items():
            for n in steps:
                wiggle = amp * (1 + 0.1 * seed) * (-1) ** n
                rows.append((order, seed, n, "test_accuracy", 0.5 + wiggle, False))
                rows.append((order, seed, n, "increment", 3 * amp * (1 + 0.1 * seed), False))
    return pd.DataFrame(rows, columns=["order", "seed", "step", "metric", "value", "diverged"])


def test_variation_and_ratio():
    df = frame({"forward": 0.02, "backward": 0.01})
    v = stability.variation(df, "test_accuracy", ("forward", "backward"))
    np.testing.assert_allclose(v.loc[0, "forward"], 0.04)
    np.testing.assert_allclose(v.loc[2, "backward"], 0.024)
    np.testing.assert_allclose(stability.variation_ratio(df, "test_accuracy"), 2.0)


def test_movement_table_windows_and_findings():
    df = frame({"forward": 0.02, "backward": 0.01})
    table = stability.movement_table(df, ("forward", "backward"), curves=("test_accuracy",))
    assert list(table.index.names) == ["window", "seed", "order"]
    assert set(table.index.get_level_values("window")) == {"second half"}
    r = stability.ratio_interval(table, "second half", "increment", "forward", "backward")
    assert r["mean"] == pytest.approx(2.0) and r["seeds"] == 3
    assert r["low"] == pytest.approx(2.0) and r["high"] == pytest.approx(2.0)  # no spread
    rows = stability.ratios(table)
    # the raw variation is shown but does not decide: the jitter does
    assert list(rows["measure"]) == ["test_accuracy jitter", "increment"]
    assert "test_accuracy variation" in table.columns and (rows["low"] <= rows["high"]).all()


def test_jitter_ignores_a_trend_that_the_raw_variation_counts():
    rows = []
    for seed in (0, 1):
        for n in range(1, 41):
            rows.append(("forward", seed, n, "test_accuracy", 0.01 * n + 0.002 * (-1) ** n, False))
            rows.append(("backward", seed, n, "test_accuracy", 0.03 * n, False))  # learns fast, smoothly
    df = pd.DataFrame(rows, columns=["order", "seed", "step", "metric", "value", "diverged"])
    raw = stability.variation(df, "test_accuracy", ("forward", "backward"))
    jit = stability.variation(df, "test_accuracy", ("forward", "backward"), detrend=True)
    assert (
        raw.loc[0, "backward"] == pytest.approx(0.03) and raw.loc[0, "forward"] < 0.03
    )  # raw: backward "moves more"
    assert jit.loc[0, "backward"] == pytest.approx(0.0, abs=1e-12)  # a straight line has no jitter
    assert jit.loc[0, "forward"] == pytest.approx(0.008)  # |±0.002 alternating| second differences


def test_lagged_movement_decay_and_steps_to():
    rows = []
    for seed in (0, 1, 2):
        for n in range(1, 101):
            rows.append(("backward", seed, n, "increment_lag10", 5.0 * n**-1.0, False))
            rows.append(("forward", seed, n, "increment_lag10", 2.0, False))
            rows.append(("forward", seed, n, "increment", 0.1, False))  # another lag: not mixed in
            rows.append(("backward", seed, n, "test_accuracy", min(1.0, n / (50 + seed)), False))
            rows.append(("forward", seed, n, "test_accuracy", min(1.0, n / 80), False))
    df = pd.DataFrame(rows, columns=["order", "seed", "step", "metric", "value", "diverged"])
    mv = stability.movement(df, ("forward", "backward"), lag=10)
    assert list(mv.columns) == ["increment"] and mv.loc[(0, "forward"), "increment"] == pytest.approx(2.0)
    assert stability.decay(df, "backward", "increment_lag10").to_numpy() == pytest.approx([-1.0] * 3)
    assert stability.decay(df, "forward", "increment_lag10").to_numpy() == pytest.approx([0.0] * 3, abs=1e-12)
    hit = stability.steps_to(df, "test_accuracy", 0.9, ("forward", "backward"))
    assert list(hit["backward"]) == [45, 46, 47] and list(hit["forward"]) == [72, 72, 72]
    assert math.isnan(stability.steps_to(df, "test_accuracy", 2.0, ("forward", "backward")).iloc[0, 0])
    m = stability.mean_interval([1.0, 2.0, 3.0])
    assert m["mean"] == pytest.approx(2.0) and m["low"] < 2.0 < m["high"]


def test_ratio_interval_uses_the_t_quantile():
    # three seeds with ratios 1, 2, 3: mean 2, s = 1, half-width t_{0.975, 2} / √3 = 4.303 / √3
    idx = pd.MultiIndex.from_product(
        [["w"], [0, 1, 2], ["forward", "backward"]], names=["window", "seed", "order"]
    )
    table = pd.DataFrame({"m": [1.0, 1.0, 2.0, 1.0, 3.0, 1.0]}, index=idx)
    r = stability.ratio_interval(table, "w", "m", "forward", "backward")
    half = 4.302652729749462 / 3**0.5
    assert r["mean"] == pytest.approx(2.0)
    assert (r["low"], r["high"]) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-12)
    one = stability.ratio_interval(
        table.xs(0, level="seed", drop_level=False), "w", "m", "forward", "backward"
    )
    assert one["seeds"] == 1 and math.isnan(one["low"]) and math.isnan(one["high"])
    with pytest.raises(ValueError, match="level"):
        stability.ratio_interval(table, "w", "m", "forward", "backward", level=1.5)


def test_diverged_records_are_left_out():
    df = frame({"forward": 0.02, "backward": 0.01})
    df.loc[(df.order == "backward") & (df.step > 15), ["value", "diverged"]] = [math.nan, True]
    wide = stability.common(df, "test_accuracy", ("forward", "backward"))
    assert wide.index.get_level_values("step").max() == 15


def test_first_step_gap_and_endpoint_quantiles():
    df = frame({"forward": 0.02, "backward": 0.01})
    assert stability.first_step_gap(df, "test_accuracy") == pytest.approx(0.01 * 1.2)
    q = stability.endpoint_quantiles(df, "test_accuracy", late_from=10)
    assert ((q >= 0) & (q <= 1)).all() and len(q) == 3
    with pytest.raises(ValueError, match="late_from"):
        stability.endpoint_quantiles(df, "test_accuracy", late_from=100)
