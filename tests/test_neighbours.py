"""Neighbouring results: AGNES against torch's Nesterov SGD, and the two-timescale model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import backward_lib as bl
from backward_lib import maps, optim, orders
from backward_lib.neighbours import agnes
from backward_lib.neighbours import two_timescale as tt
from conftest import assert_tree_close, max_diff

# ---------------------------------------------------------------- AGNES


def test_agnes_with_alpha_eta_is_torch_nesterov(net):
    """α = η, ρ = μ: the same iterates as torch.optim.SGD(nesterov=True) and maps.sgd, any order."""
    lr, mu = 0.05, 0.9
    theta0 = net.theta0()
    T_agnes = net.step_map(agnes.from_nesterov(lr, mu))
    T_sgd = net.step_map(maps.sgd(lr, momentum=mu, nesterov=True))
    fore = bl.iterate(T_agnes, theta0, orders.forward(), 6)
    hand = net.hand_chain(range(1, 7), make_opt=lambda p: torch.optim.SGD(p, lr, momentum=mu, nesterov=True))
    assert_tree_close(fore[6], hand, atol=1e-12)
    for order in (orders.forward(), orders.backward()):
        a = bl.iterate(T_agnes, theta0, order, [3, 6])
        b = bl.iterate(T_sgd, theta0, order, [3, 6])
        assert max_diff(a[6], b[6]) < 1e-12, str(order)
    assert max_diff(fore[6], theta0) > 1e-2  # the steps really move θ


def test_agnes_velocity_is_minus_rho_times_torch_buffer():
    g = torch.Generator().manual_seed(0)
    p_ref = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    p = {"p": p_ref.detach().clone()}
    lr, mu = 0.1, 0.8
    opt = torch.optim.SGD([p_ref], lr=lr, momentum=mu, nesterov=True)
    ours = agnes.from_nesterov(lr, mu)
    state = ours.init(p)
    for _ in range(4):
        grad = {"p": torch.sin(3 * p["p"]) + p["p"] ** 3}  # any non-linear gradient field
        p_ref.grad = torch.sin(3 * p_ref.detach()) + p_ref.detach() ** 3
        opt.step()
        updates, state = ours.update(grad, state, p)
        p = optim.apply_updates(p, updates)
        torch.testing.assert_close(p["p"], p_ref.detach(), atol=1e-14, rtol=0)
        buf = opt.state[p_ref]["momentum_buffer"]
        torch.testing.assert_close(agnes.velocity(state, mu)[0], -mu * buf, atol=1e-14, rtol=0)


def test_agnes_two_steps_by_hand_with_alpha_not_eta():
    """The paper's three-line scheme, written out, on a quadratic with gradient A x."""
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    lr, alpha, rho = 0.1, 0.3, 0.7
    x = torch.tensor([1.0, -1.0], dtype=torch.float64)
    v = torch.zeros(2, dtype=torch.float64)
    xp = x + alpha * v
    expected = []
    for _ in range(3):
        gp = A @ xp
        x = xp - lr * gp
        v = rho * (v - gp)
        xp = x + alpha * v
        expected.append(xp.clone())
    opt = agnes.agnes(lr, alpha, rho)
    p = {"p": torch.tensor([1.0, -1.0], dtype=torch.float64)}
    state = opt.init(p)
    for want in expected:
        updates, state = opt.update({"p": A @ p["p"]}, state, p)
        p = optim.apply_updates(p, updates)
        torch.testing.assert_close(p["p"], want, atol=1e-15, rtol=0)
    nesterov = {"p": torch.tensor([1.0, -1.0], dtype=torch.float64)}
    s2 = agnes.from_nesterov(lr, rho).init(nesterov)
    for _ in range(3):
        updates, s2 = agnes.from_nesterov(lr, rho).update({"p": A @ nesterov["p"]}, s2, nesterov)
        nesterov = optim.apply_updates(nesterov, updates)
    assert float((nesterov["p"] - p["p"]).abs().max()) > 1e-3  # α ≠ η is a different method


BAD = [(0.0, 0.1, 0.9), (0.1, -1.0, 0.9), (0.1, 0.1, 1.0), (float("nan"), 0.0, 0.0)]


@pytest.mark.parametrize("lr, alpha, rho", BAD)
def test_agnes_rejects_bad_parameters(lr, alpha, rho):
    with pytest.raises(ValueError):
        agnes.agnes(lr, alpha, rho)


# ---------------------------------------------------------------- two-timescale model

ETA = 0.01


def _state(rows: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    theta = tt.init(list(range(rows)), 20, ETA)
    theta[0] = torch.randn(rows, 21, dtype=torch.float64, generator=g)
    return theta


def test_sgd_step_matches_autograd_with_row_parameters():
    rows, n = 6, 11
    seeds = [3, 3, 4, 5, 6, 7]
    h = [1e-2, 2e-2, 1e-2, 5e-3, 1e-2, 1e-2]
    eps = [1.0, 0.1, 2e-5, 1.0, 0.5, 0.01]
    T = tt.online_sgd(tt.PAPER, ETA, h, eps, seeds)
    theta = _state(rows)
    x, y = tt.Draws(tt.PAPER, seeds).sample(n)
    theta[1, :, 5] = torch.from_numpy(x) + 0.2 * ETA  # neuron 5 inside its transition in every row
    a = theta[0].clone().requires_grad_(True)
    u = theta[1].clone().requires_grad_(True)
    f = (a * tt.smooth_step((torch.from_numpy(x)[:, None] - u) / ETA)).sum(1)
    ga, gu = torch.autograd.grad(((torch.from_numpy(y) - f) ** 2).sum(), (a, u))
    h_t, e_t = torch.tensor(h, dtype=torch.float64)[:, None], torch.tensor(eps, dtype=torch.float64)[:, None]
    got, _ = T.update(theta.clone(), None, n)
    torch.testing.assert_close(got[0], theta[0] - h_t * ga, atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(got[1], theta[1] - e_t * h_t * gu, atol=1e-13, rtol=1e-13)
    assert float((got[1, :, 5] - theta[1, :, 5]).abs().min()) > 1e-8  # the positions really move


def test_smooth_step_and_its_derivative():
    z = torch.linspace(-1, 1, 401, dtype=torch.float64, requires_grad=True)
    s = tt.smooth_step(z)
    (ds,) = torch.autograd.grad(s.sum(), z)
    torch.testing.assert_close(ds, tt.smooth_step_grad(z.detach()), atol=1e-12, rtol=0)
    z, s = z.detach(), s.detach()
    assert float(s[z <= -0.5].abs().max()) == 0.0 and float((s[z >= 0.5] - 1).abs().max()) == 0.0
    assert torch.all(torch.diff(s) >= 0)


def test_bias_neuron_never_moves_and_draws_replay_in_any_order():
    seeds = [0, 1, 2]
    T = tt.online_sgd(tt.PAPER, ETA, 0.05, 1.0, seeds, chunk=16)
    theta0 = tt.init(seeds, 20, ETA)
    out = bl.iterate(T, theta0, orders.backward(), [40])[40]
    assert torch.all(out[1, :, 0] == -ETA / 2)
    assert float((out[1, :, 1:] - theta0[1, :, 1:]).abs().max()) > 1e-4
    d1, d2 = tt.Draws(tt.PAPER, seeds, chunk=16), tt.Draws(tt.PAPER, [9, 1, 2], chunk=16)
    late = [d1.sample(n) for n in (70, 3, 33, 70)]
    assert np.array_equal(late[0][0], late[3][0]) and np.array_equal(late[0][1], late[3][1])
    assert np.array_equal(d1.sample(3)[0][1:], d2.sample(3)[0][1:])  # a row's samples: its own seed
    assert not np.array_equal(d1.sample(3)[0][0], d2.sample(3)[0][0])


def test_backward_composition_reverses_the_samples():
    """θ̃_n = T_1 ∘ … ∘ T_n(θ₀): the update of step n comes first."""
    seeds = [0, 1]
    T = tt.online_sgd(tt.PAPER, ETA, 0.05, 0.5, seeds, chunk=8)
    theta0 = _state(2, seed=1)
    back = bl.iterate(T, theta0, orders.backward(), [5])[5]
    hand = theta0.clone()
    for n in (5, 4, 3, 2, 1):
        hand, _ = T.update(hand, None, n)
    torch.testing.assert_close(back, hand, atol=0, rtol=0)
    fore = bl.iterate(T, theta0, orders.forward(), [5])[5]
    assert float((fore - back).abs().max()) > 1e-6


def test_l2_error_of_one_neuron_per_jump_matches_closed_form():
    """Neurons on the jumps with a_j = jump: error Σ Δ² η ∫(1{z>0} − σ(z))² dz, the integral 0.058929."""
    target = tt.PAPER
    theta = torch.zeros(2, 1, 6, dtype=torch.float64)
    theta[1, 0] = torch.tensor([-ETA / 2, *target.jumps])
    theta[0, 0] = torch.tensor([target.values[0], *np.diff(target.values)])
    c = 2 * (9 / 5 / 32 - 12 / 6 / 64 + 4 / 7 / 128)  # 2 ∫₀^½ w⁴ (3 − 2w)² dw
    expected = float(np.sum(np.diff(target.values) ** 2)) * ETA * c
    fine, default = tt.l2_error(theta, target, ETA, points=20000)[0], tt.l2_error(theta, target, ETA)[0]
    assert fine == pytest.approx(expected, rel=1e-4)  # midpoint rule: error O(points⁻²)
    assert abs(default - expected) == pytest.approx(25 * abs(fine - expected), rel=0.05)


def test_best_fit_and_limit_risk():
    target = tt.PAPER
    _, values = tt.best_fit(target, np.array(target.jumps))
    np.testing.assert_allclose(values, target.values, atol=1e-14)
    assert tt.limit_risk(target, np.array(target.jumps)) == pytest.approx(0.0, abs=1e-14)
    # no neuron inside [0, 1]: one cell, the risk is the variance of f* under U[0, 1]
    x = (np.arange(200000) + 0.5) / 200000
    assert tt.limit_risk(target, np.array([1.5])) == pytest.approx(np.var(target(x)), rel=1e-9)
    # one neuron at 0.3 splits [0, 1]: the left cell [0, 0.3] has mean (0.2·1 + 0.1·4)/0.3 = 2
    assert tt.best_fit(target, np.array([0.3]))[1][0] == pytest.approx(2.0)


def test_limit_velocity_is_minus_gradient_of_risk():
    rng = np.random.default_rng(0)
    u = np.sort(rng.random(20))
    v = tt.limit_velocity(tt.PAPER, u)
    d = 1e-7
    for j in range(20):
        up, dn = u.copy(), u.copy()
        up[j] += d
        dn[j] -= d
        grad = (tt.limit_risk(tt.PAPER, up) - tt.limit_risk(tt.PAPER, dn)) / (2 * d)
        assert v[j] == pytest.approx(-grad, abs=1e-6)
    assert np.abs(v).max() > 0.1  # some neurons flank a jump and move


def test_limit_path_decreases_risk_and_lands_on_the_jump():
    target = tt.Target((0.5,), (0.0, 2.0))
    path = tt.limit_path(target, np.array([0.1, 0.3, 0.7, 0.9]), [0.01, 0.05, 1.0], dtau=1e-3)
    risks = [tt.limit_risk(target, u) for u in path]
    assert risks[0] < tt.limit_risk(target, np.array([0.1, 0.3, 0.7, 0.9]))
    assert np.all(np.diff(risks) <= 1e-15) and risks[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.any(path[-1] == 0.5)
    np.testing.assert_array_equal(path[-1][[0, 3]], [0.1, 0.9])  # neurons without a jump stay
