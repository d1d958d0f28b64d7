"""Tidy records, divergence marking, the increment metric and the recording grids."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import backward_lib
from backward_lib import maps, models, orders, record, schedule

H = 1e10 + 1.0  # SGD on L(x) = ‖x‖²/2: x ← (1 − h) x = −1e10 · x


def quadratic_sgd(x, n):
    return x - H * x  # the gradient of ‖x‖²/2 is x


def test_divergence_is_marked():
    x0 = torch.ones(3, dtype=torch.float32)  # float32 overflows at |x| > 3.4e38, i.e. at step 4
    df = record.record(
        quadratic_sgd,
        x0,
        {"forward": orders.forward(), "backward": orders.backward()},
        6,
        {"max_abs": lambda x: float(x.abs().max()), "first": lambda x: float(x[0])},
        seed=11,
    )
    assert list(df.columns) == ["order", "seed", "step", "metric", "value", "diverged"]
    assert set(df["order"]) == {"forward", "backward"}
    assert set(df["seed"]) == {11}
    assert set(df["metric"]) == {"max_abs", "first", "increment"}
    for (_order, metric), g in df.groupby(["order", "metric"]):
        g = g.set_index("step")
        first = 2 if metric == "increment" else 1
        assert list(g.index) == list(range(first, 7))
        before, after = g.loc[:3], g.loc[4:]
        assert not before["diverged"].any() and before["value"].map(math.isfinite).all()
        assert after["diverged"].all() and after["value"].isna().all()
    # the finite values are the iterates: |x_n| = (1e10)^n in float32
    fwd = df[(df.order == "forward") & (df.metric == "first")].set_index("step")["value"]
    for n in (1, 2, 3):
        assert fwd[n] == pytest.approx((1 - H) ** n, rel=1e-6)


def test_a_metric_that_is_not_finite_marks_only_its_row():
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    df = record.record(
        lambda x, n: 0.5 * x,
        x0,
        {"f": orders.forward()},
        3,
        {"odd": lambda x: math.nan if x[0] < 0.3 else 1.0, "sum": lambda x: float(x.sum())},
        increment=False,
    )
    rows = df.set_index(["metric", "step"])
    assert not rows.loc[("odd", 1), "diverged"] and rows.loc[("odd", 1), "value"] == 1.0
    for n in (2, 3):  # x_n[0] = 0.5^n < 0.3
        assert rows.loc[("odd", n), "diverged"] and math.isnan(rows.loc[("odd", n), "value"])
        assert not rows.loc[("sum", n), "diverged"]
        assert rows.loc[("sum", n), "value"] == pytest.approx(3.0 * 0.5**n, rel=1e-15)
    assert "increment" not in set(df["metric"])


def test_increment_is_the_distance_between_recorded_iterates(affine, x0):
    steps = [1, 2, 5, 9]
    df = record.record(affine, x0, {"b": orders.backward(), "f": orders.forward()}, steps, {})
    assert set(df["metric"]) == {"increment"}
    for name, order in (("b", orders.backward()), ("f", orders.forward())):
        its = backward_lib.iterate(affine, x0, order, steps)
        inc = df[df.order == name].set_index("step")["value"]
        assert list(inc.index) == [2, 5, 9]
        for m, n in ((1, 2), (2, 5), (5, 9)):
            assert inc[n] == pytest.approx(float((its[n] - its[m]).norm()), rel=1e-12, abs=1e-14)
    assert not df["diverged"].any()


def test_network_divergence_and_increment():
    torch.manual_seed(0)
    model = models.mlp(4, 2, depth=1, width=8, seed=0).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randn(32, 2, generator=g, dtype=torch.float64) * 100
    sched = schedule.batches(32, 8, 12, seed=0)
    theta0 = maps.params_of(model)
    loss = record.loss_metric(model, nn.MSELoss(), x, y)
    T = maps.network(model, nn.MSELoss(), maps.sgd(50.0), x, y, sched)
    df = record.record(T, theta0, {"forward": orders.forward()}, 12, {"loss": loss})
    lo = df[df.metric == "loss"].set_index("step")
    assert not lo.loc[1, "diverged"] and math.isfinite(lo.loc[1, "value"])
    assert lo["diverged"].any()
    first_bad = int(lo.index[lo["diverged"]].min())
    assert lo.loc[first_bad:, "diverged"].all() and lo.loc[first_bad:, "value"].isna().all()
    assert not lo.loc[: first_bad - 1, "diverged"].any()
    # increment against the iterates recomputed by hand
    its = backward_lib.iterate(T, theta0, orders.forward(), [1, 2])
    inc = df[(df.metric == "increment") & (df.step == 2)]["value"].item()
    by_hand = math.sqrt(sum(float(((its[2][k] - its[1][k]).double() ** 2).sum()) for k in its[1]))
    assert inc == pytest.approx(by_hand, rel=1e-12)


def test_metrics_are_evaluated_in_eval_mode_and_restore_train(bn_net):
    theta0 = bn_net.theta0()
    model = bn_net.model
    acc = record.accuracy_metric(model, bn_net.x, bn_net.y, chunk=10)
    loss = record.loss_metric(model, bn_net.loss_fn, bn_net.x, bn_net.y, chunk=10)
    ref = copy.deepcopy(model)
    ref.load_state_dict(theta0)
    ref.eval()
    with torch.no_grad():
        out = ref(bn_net.x)
    assert acc(theta0) == pytest.approx(float((out.argmax(-1) == bn_net.y).double().mean()), abs=0)
    assert loss(theta0) == pytest.approx(float(bn_net.loss_fn(out, bn_net.y)), rel=1e-12)
    assert model.training
    # eval mode: the running statistics were used and not updated
    assert int(theta0["1.num_batches_tracked"]) == 0


def test_grids():
    assert record.every(3, 10) == [1, 4, 7, 10]
    assert record.every(5, 10, first=0) == [0, 5, 10]
    assert record.every(1, 3) == [1, 2, 3]
    g = record.log_grid(1000, 20)
    assert g[0] == 1 and g[-1] == 1000 and g == sorted(set(g))
    assert 15 <= len(g) <= 20
    with pytest.raises(ValueError, match="record_every"):
        record.every(0, 10)
    with pytest.raises(ValueError):
        record.log_grid(0)
