"""Hessian-vector products, the Lie-bracket correction and the order-average step (approx)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import backward_lib
from backward_lib import maps, models, orders, tree
from backward_lib.analysis import approx, curvature
from conftest import make_problem


@pytest.fixture
def smooth():
    """A tanh MLP (smooth, so Taylor expansions in h hold) on 64 points, batches of 8."""
    return make_problem(models.mlp(6, 3, depth=2, width=16, activation="tanh", seed=1), steps=8)


def _loss(p):
    return approx.ExampleLoss(p.model, p.loss_fn, p.x, p.y)


def _dot(a, b) -> float:
    return float(sum((u * v).sum() for u, v in zip(tree.leaves(a), tree.leaves(b), strict=True)))


def _axpy(a, b, s):
    return tree.tree_map(lambda u, v: u + s * v, a, b)


# ------------------------------------------------------------------------------------- HVPs


def test_hvp_of_a_quadratic_is_exact():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = M @ M.T
    v = torch.randn(5, generator=g, dtype=torch.float64)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    grad, hv = approx.grad_and_hvp(lambda x: 0.5 * x @ A @ x, w, v)
    torch.testing.assert_close(hv, A @ v, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad, A @ w, atol=1e-12, rtol=0)
    _, h2 = approx.grad_and_hvp(lambda x: 0.5 * x @ A @ x, w, v, plus_grad=2.0)
    torch.testing.assert_close(h2, A @ (v + 2 * A @ w), atol=1e-10, rtol=0)  # H(v + s g)


def test_hvp_matches_finite_differences_on_a_network(smooth):
    loss = _loss(smooth)
    theta = smooth.theta0()
    f = loss.batch(theta, smooth.schedule[0])
    p = loss.variables(theta)
    g = torch.Generator().manual_seed(2)
    v = tree.tree_map(lambda t: torch.randn(t.shape, generator=g, dtype=t.dtype), p)
    hv = approx.hvp(f, p, v)
    eps = 1e-5  # central differences of the gradient: error O(eps²) ≈ 1e-10
    gp, _ = approx.grad_and_hvp(f, _axpy(p, v, eps), v)
    gm, _ = approx.grad_and_hvp(f, _axpy(p, v, -eps), v)
    fd = tree.tree_map(lambda a, b: (a - b) / (2 * eps), gp, gm)
    scale = max(float(t.abs().max()) for t in tree.leaves(hv))
    assert scale > 1e-2  # a non-trivial curvature
    assert tree.distance(hv, fd) < 1e-7 * scale


def test_hvp_on_a_flat_vector_equals_the_dense_hessian(smooth):
    flat = curvature.flat_loss(smooth.model, nn.functional.cross_entropy, smooth.x, smooth.y)
    w = flat.pack(smooth.theta0())
    idx = smooth.schedule[1]
    H = curvature.hessian(flat, w, idx)
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(3), dtype=w.dtype)
    loss = approx.ExampleLoss.from_flat(flat)
    hv = approx.hvp(loss.batch(w, idx), loss.variables(w), v)
    torch.testing.assert_close(hv, H @ v, atol=1e-10, rtol=1e-8)


def test_weighted_loss_of_counts_is_the_sum_of_batch_losses(smooth):
    loss, theta = _loss(smooth), smooth.theta0()
    p = loss.variables(theta)
    batches = smooth.schedule[:3]
    direct = sum(float(loss.batch(theta, b)(p)) for b in batches)
    counts = torch.bincount(batches.flatten(), minlength=len(smooth.x))
    idx = torch.nonzero(counts).squeeze(1)
    weighted = float(loss.function(theta, idx, counts[idx].double() / batches.shape[1])(p))
    assert math.isclose(direct, weighted, rel_tol=1e-12)


# --------------------------------------------------------------------- bracket correction


def _direct(loss, theta, schedule, n):
    """Σ_{i<j≤n} (H_i g_j − H_j g_i)(θ₀) with one HVP per ordered pair."""
    p = loss.variables(theta)
    f = [loss.batch(theta, schedule[i]) for i in range(n)]
    g = [approx.grad_and_hvp(fi, p, p)[0] for fi in f]
    out = tree.tree_map(torch.zeros_like, p)
    for i, j in itertools.combinations(range(n), 2):
        out = _axpy(out, approx.hvp(f[i], p, g[j]), 1.0)
        out = _axpy(out, approx.hvp(f[j], p, g[i]), -1.0)
    return out


@pytest.mark.parametrize("mode", ["paper", "deferred"])
def test_incremental_correction_equals_the_double_sum(smooth, mode):
    loss, theta = _loss(smooth), smooth.theta0()
    corr = approx.BracketCorrection(loss, theta, smooth.schedule, mode=mode)
    corr.advance(1)
    assert max(float(t.abs().max()) for t in tree.leaves(corr.value())) < 1e-15  # C_1 = 0
    for n in (3, 6):
        corr.advance(n)
        want = _direct(loss, theta, smooth.schedule, n)
        got = corr.value()
        size = math.sqrt(_dot(want, want))
        assert size > 1e-3
        assert tree.distance(got, want) < 1e-10 * size, n
    # cost: paper = one batch HVP per step + one union HVP from step 2; deferred: + one per read
    expected = 6 + 5 if mode == "paper" else 6 + 3  # deferred: reads at n = 1, 3, 6
    assert corr.cost.hvps == expected


def test_correction_on_a_flat_vector_equals_the_dict_version(smooth):
    flat = curvature.flat_loss(smooth.model, nn.functional.cross_entropy, smooth.x, smooth.y)
    theta = smooth.theta0()
    w = flat.pack(theta)
    by_dict = approx.BracketCorrection(_loss(smooth), theta, smooth.schedule)
    flat_loss = approx.ExampleLoss.from_flat(flat)
    by_flat = approx.BracketCorrection(flat_loss, w, smooth.schedule, mode="deferred")
    by_dict.advance(4)
    by_flat.advance(4)
    want = flat.pack(by_dict.value())
    torch.testing.assert_close(by_flat.value(), want, atol=1e-10 * float(want.norm()), rtol=0)
    # corrected() on a flat vector: θ + h² C
    torch.testing.assert_close(approx.corrected(w, by_flat.value(), 0.1), w + 0.01 * by_flat.value())


def test_corrected_iterate_is_third_order_and_the_sign_matters(smooth):
    """‖θ̃_n − θ_n‖ ~ h² and ‖θ̃_n − θ̂_n‖ ~ h³; with the sign flipped, the error stays ~ h²."""
    theta0, n = smooth.theta0(), 5
    corr = approx.BracketCorrection(_loss(smooth), theta0, smooth.schedule)
    corr.advance(n)
    C = corr.value()
    errs = {}
    for h in (0.04, 0.02):
        T = smooth.step_map(maps.sgd(h))
        fwd = backward_lib.iterate(T, theta0, orders.forward(), [n])[n]
        bwd = backward_lib.iterate(T, theta0, orders.backward(), [n])[n]
        errs[h] = (
            tree.distance(bwd, fwd),
            tree.distance(bwd, approx.corrected(fwd, C, h)),
            tree.distance(bwd, _flip(fwd, C, h)),
        )
    ratio = [math.log2(errs[0.04][i] / errs[0.02][i]) for i in range(3)]
    assert abs(ratio[0] - 2) < 0.15 and abs(ratio[1] - 3) < 0.25 and abs(ratio[2] - 2) < 0.15
    assert errs[0.02][1] < 0.1 * errs[0.02][0]


def _flip(theta, C, h):
    return {k: v - h**2 * C[k] if k in C else v for k, v in theta.items()}


def test_approximate_backward_runs_the_forward_engine(smooth):
    theta0, h = smooth.theta0(), 0.05
    T = smooth.step_map(maps.sgd(h))
    corr = approx.BracketCorrection(_loss(smooth), theta0, smooth.schedule, mode="deferred")
    got = dict(approx.approximate_backward(T, theta0, corr, h, [1, 4]))
    fwd = backward_lib.iterate(T, theta0, orders.forward(), [1, 4])
    # C_1 = 0 up to round-off (two HVP paths, ~1e-16), times h²: θ̂_1 = θ_1 = θ̃_1; the tolerance
    # is a few ulps of float64 (5.8e-20 measured on AMD AVX2, exactly 0 elsewhere)
    assert tree.distance(got[1], fwd[1]) < 1e-17
    want = approx.corrected(fwd[4], _direct(_loss(smooth), theta0, smooth.schedule, 4), h)
    assert tree.distance(got[4], want) < 1e-12


def test_compare_records_three_orders_in_lockstep(smooth):
    theta0, h = smooth.theta0(), 0.05
    T = smooth.step_map(maps.sgd(h))
    corr = approx.BracketCorrection(_loss(smooth), theta0, smooth.schedule, mode="deferred")
    probe = lambda: lambda th: {"w": float(th["1.weight"].sum())}  # noqa: E731
    df, costs = approx.compare(T, theta0, corr, h, [1, 3, 5], probe, seed=7)
    assert set(df["order"]) == {"forward", "backward", "approx. backward"} and set(df["seed"]) == {7}
    gap = df[df["metric"] == "to_backward"].pivot_table(index="step", columns="order", values="value")
    assert gap.loc[1].abs().max() < 1e-15  # θ̂_1 = θ_1 = θ̃_1
    fwd = backward_lib.iterate(T, theta0, orders.forward(), [5])[5]
    bwd = backward_lib.iterate(T, theta0, orders.backward(), [5])[5]
    assert math.isclose(gap.loc[5, "forward"], tree.distance(fwd, bwd), rel_tol=1e-9)
    assert gap.loc[5, "approx. backward"] < gap.loc[5, "forward"]  # smooth net, small h
    c = costs.set_index("order")
    assert c.loc["backward", "map applications"] == 1 + 3 + 5
    assert c.loc["forward", "map applications"] == 5 and c.loc["approx. backward", "HVPs"] == 5 + 3


# ---------------------------------------------------------------- order average (D.1, D.2)


def _small_steps(p, idx, h, k, perm):
    """k SGD steps with lr h/k on the sub-batches of idx in the order perm, through the engine."""
    sched = torch.stack([approx.sub_batches(idx, k)[a] for a in perm])
    T = maps.network(p.model, p.loss_fn, maps.sgd(h / k), p.x, p.y, sched)
    return backward_lib.iterate(T, p.theta0(), orders.forward(), [k])[k]


def _order_average_step(p, idx, h, k, lam=1.0):
    T = approx.order_average(p.model, p.loss_fn, p.x, p.y, idx[None], h, k, lam)
    return backward_lib.iterate(T, p.theta0(), orders.forward(), [1])[1]


def test_order_average_step_equals_the_average_of_both_orders_to_third_order(smooth):
    idx, k = smooth.schedule[0], 2
    errs, plain = [], []
    for h in (0.08, 0.04):
        runs = [_small_steps(smooth, idx, h, k, perm) for perm in itertools.permutations(range(k))]
        avg = tree.tree_map(lambda *ts: sum(ts) / len(ts), *runs)
        errs.append(tree.distance(avg, _order_average_step(smooth, idx, h, k)))
        plain.append(tree.distance(avg, _order_average_step(smooth, idx, h, k, lam=0.0)))
    assert abs(math.log2(errs[0] / errs[1]) - 3) < 0.25  # O(h³)
    assert abs(math.log2(plain[0] / plain[1]) - 2) < 0.15  # without the term: O(h²)
    assert errs[1] < 0.1 * plain[1]


def test_order_average_with_zero_weight_is_large_batch_sgd(smooth):
    h = 0.1
    T_sgd = smooth.step_map(maps.sgd(h))
    T_oa = approx.order_average(smooth.model, smooth.loss_fn, smooth.x, smooth.y, smooth.schedule, h, 4, 0.0)
    a = backward_lib.iterate(T_sgd, smooth.theta0(), orders.forward(), [3])[3]
    b = backward_lib.iterate(T_oa, smooth.theta0(), orders.forward(), [3])[3]
    assert tree.distance(a, b) < 1e-13


def test_lemma_term_gives_the_second_order_of_small_steps(smooth):
    """k small steps = large step + (h/k)² Σ_{a<b} H_b g_a + O(h³) (Appendix D.1)."""
    loss, theta, idx, k = _loss(smooth), smooth.theta0(), smooth.schedule[2], 4
    term = approx.lemma_term(loss, theta, approx.sub_batches(idx, k))
    errs = []
    for h in (0.08, 0.04):
        small = _small_steps(smooth, idx, h, k, range(k))
        large = _order_average_step(smooth, idx, h, k, lam=0.0)
        errs.append(tree.distance(small, approx.corrected(large, term, h / k)))
    assert abs(math.log2(errs[0] / errs[1]) - 3) < 0.25


def test_bad_arguments_raise(smooth):
    with pytest.raises(ValueError, match="k must divide"):
        approx.sub_batches(smooth.schedule[0], 3)
    with pytest.raises(ValueError, match="mode"):
        approx.BracketCorrection(_loss(smooth), smooth.theta0(), smooth.schedule, mode="nope")
    with pytest.raises(ValueError, match="k=3 dividing"):
        approx.order_average(smooth.model, smooth.loss_fn, smooth.x, smooth.y, smooth.schedule, 0.1, 3)
