"""The engine's economy (map applications), step handling and non-mutation."""

from __future__ import annotations

import pytest
import torch

import backward_lib
from backward_lib import engine, orders


class Counting:
    """Wraps a plain map and counts its calls."""

    def __init__(self, T):
        self.T, self.calls = T, 0

    def __call__(self, x, n):
        self.calls += 1
        return self.T(x, n)


@pytest.mark.parametrize("N", [1, 2, 5, 17, 100])
def test_forward_and_backward_costs(N):
    assert backward_lib.count_applications(orders.forward(), N) == N
    assert backward_lib.count_applications(orders.backward(), N) == N * (N + 1) // 2
    assert backward_lib.count_applications(orders.backward(), [N]) == N
    assert backward_lib.count_applications(orders.forward(), [N]) == N


def test_sparse_costs():
    # backward at 3, 7, 10: each chain starts from θ₀ and shares nothing
    assert backward_lib.count_applications(orders.backward(), [3, 7, 10]) == 20
    # forward: one pass up to the last recorded step
    assert backward_lib.count_applications(orders.forward(), [3, 7, 10]) == 10
    assert backward_lib.count_applications(orders.forward(), range(2, 51, 4)) == 50


@pytest.mark.parametrize(("W", "k"), [(1, 6), (3, 4), (5, 2), (10, 8), (100, 20)])
def test_window_costs(W, k):
    N = W * k
    per_window = W * (W + 1) // 2
    # start="window": each window starts at this order's own (cached) iterate
    assert backward_lib.count_applications(orders.window(W, start="window"), N) == k * per_window
    # start="forward": plus one forward pass up to the last window start, shared between windows
    # (with W = 1 its first application, T_1(θ₀), is step 1's chain itself)
    shared = 1 if W == 1 else 0
    assert backward_lib.count_applications(orders.window(W), N) == k * per_window + (k - 1) * W - shared
    # recording only the last step: one application per batch
    assert backward_lib.count_applications(orders.window(W, start="window"), [N]) == N
    assert backward_lib.count_applications(orders.window(W), [N]) == N


def test_long_chained_windows_neither_recurse_nor_recompute():
    """5000 chained windows nest 5000 chains deep: still W(W+1)/2 applications per window."""
    W, k = 2, 5000
    assert backward_lib.count_applications(orders.window(W, start="window"), W * k) == k * 3
    assert backward_lib.count_applications(orders.window(W, start="window"), [W * k]) == W * k
    assert orders.window(W, start="window").chain(W * k).cost() == W * k
    assert orders.window(1, start="window").chain(3000) == orders.window(1, start="window").chain(3000)


def test_long_windows_values_and_calls(affine, x0):
    """Windows longer than the engine's point cache: right values, each start computed once."""
    W, N = 9, 63
    T = Counting(affine)
    its = backward_lib.iterate(T, x0, orders.window(W, start="window"), N)
    assert T.calls == (N // W) * W * (W + 1) // 2
    start = x0
    for r in range(0, N, W):
        for n in range(r + 1, r + W + 1):
            x = start
            for m in range(n, r, -1):
                x = affine(x, m)
            torch.testing.assert_close(its[n], x, atol=1e-12, rtol=0, msg=f"step {n}")
        start = its[r + W]


@pytest.mark.parametrize(("r", "N"), [(1, 8), (4, 12), (11, 12)])
def test_reset_costs(r, N):
    tri = lambda m: m * (m + 1) // 2  # noqa: E731
    # θ_r is computed once (start points are cached), not once per later step
    assert backward_lib.count_applications(orders.reset(at=r, start="backward"), N) == tri(r) + tri(N - r)
    assert backward_lib.count_applications(orders.reset(at=r), N) == tri(r) + (r if r > 1 else 0) + tri(N - r)
    assert backward_lib.count_applications(orders.delayed(after=r), N) == r + tri(N - r)


ORDERS = [
    orders.forward(),
    orders.backward(),
    orders.reset(at=4),
    orders.reset(at=4, start="backward"),
    orders.delayed(after=6),
    orders.window(3),
    orders.window(3, start="window"),
    orders.window(7, start="window"),
]


@pytest.mark.parametrize("order", ORDERS, ids=str)
@pytest.mark.parametrize(
    "steps", [20, [2, 9, 20], [20], range(5, 21, 5)], ids=["all", "three", "last", "range"]
)
def test_engine_makes_exactly_the_counted_calls(affine, x0, order, steps):
    T = Counting(affine)
    reported = []
    list(engine.trajectory(T, x0, order, steps, on_apply=reported.append))
    expected = backward_lib.count_applications(order, steps)
    assert T.calls == expected
    assert sum(reported) == expected


def test_steps_int_or_iterable_and_increasing(affine, x0):
    its = backward_lib.iterate(affine, x0, orders.backward(), (9, 3, 3, 5))
    assert list(its) == [3, 5, 9]
    assert list(backward_lib.iterate(affine, x0, orders.forward(), 4)) == [1, 2, 3, 4]
    gen = (s for s in [6, 2])
    assert list(backward_lib.iterate(affine, x0, orders.forward(), gen)) == [2, 6]
    assert [n for n, _ in engine.trajectory(affine, x0, orders.backward(), [4, 1])] == [1, 4]
    assert engine.normalize_steps(3) == [1, 2, 3]


@pytest.mark.parametrize("steps", [0, -3, [], [0, 2], True])
def test_bad_steps(affine, x0, steps):
    with pytest.raises(ValueError, match="steps"):
        backward_lib.iterate(affine, x0, orders.forward(), steps)
    with pytest.raises(ValueError, match="steps"):
        backward_lib.count_applications(orders.backward(), steps)


def test_bad_map_and_order(x0):
    with pytest.raises(ValueError, match="T must be callable"):
        backward_lib.iterate(42, x0, orders.forward(), 3)
    with pytest.raises(ValueError, match="order"):
        backward_lib.iterate(lambda x, n: x, x0, "forward", 3)
    with pytest.raises(ValueError, match="check_every"):
        backward_lib.iterate(lambda x, n: x, x0, orders.forward(), 3, check_every=0)


def test_inplace_stepmap_never_mutates_theta0_or_handed_out_iterates(affine):
    """An in-place map (like the network maps): the engine must hand every chain its own copy."""

    def update(theta, state, n):
        theta["x"].copy_(affine(theta["x"], n))  # overwrite in place
        return theta, state

    T = backward_lib.StepMap(init=lambda theta: None, update=update, inplace=True)
    theta0 = {"x": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)}
    saved0 = theta0["x"].clone()
    for order in (orders.forward(), orders.backward(), orders.reset(at=3), orders.window(3, start="window")):
        handed = []
        for n, theta in engine.trajectory(T, theta0, order, 10):
            handed.append((n, theta, theta["x"].clone()))
        for n, theta, snapshot in handed:  # none changed after it was handed out
            assert torch.equal(theta["x"], snapshot), (str(order), n)
        assert torch.equal(theta0["x"], saved0)
    # and the values are right (forward: a single pass that keeps mutating its own copy)
    its = backward_lib.iterate(T, theta0, orders.forward(), 5)
    x = saved0
    for n in range(1, 6):
        x = affine(x, n)
        torch.testing.assert_close(its[n]["x"], x, atol=1e-12, rtol=0)


def test_stepmap_state_is_fresh_per_chain(x0):
    """State counts applications since the chain's start: backward chains restart it."""

    def init(theta):
        return 0

    def update(theta, state, n):
        return theta + (state + 1) * n, state + 1

    T = backward_lib.StepMap(init=init, update=update)
    zero = torch.tensor(0.0, dtype=torch.float64)
    fore = backward_lib.iterate(T, zero, orders.forward(), 4)
    back = backward_lib.iterate(T, zero, orders.backward(), 4)
    # forward: Σ_{k≤n} k·k (state keeps counting along the single pass)
    assert [float(v) for v in fore.values()] == [1.0, 5.0, 14.0, 30.0]
    # backward step n: batches n, …, 1 with counts 1..n: Σ_{j=1..n} j·(n + 1 − j)
    assert [float(v) for v in back.values()] == [1.0, 4.0, 10.0, 20.0]


def test_divergence_stops_early():
    """A chain that has turned non-finite stops paying for map applications."""
    T = Counting(lambda x, n: x * 1e300)
    out = backward_lib.iterate(
        T, torch.tensor(1.0, dtype=torch.float64), orders.backward(), [50], check_every=4
    )
    assert not torch.isfinite(out[50])
    assert T.calls == 4  # inf after 2 steps, noticed at the first check


def test_progress_bar_with_a_one_shot_iterator(affine, x0):
    """steps given as a generator must survive being counted for the progress bar."""
    its = backward_lib.iterate(affine, x0, orders.backward(), (s for s in [5, 2]), progress=True)
    assert list(its) == [2, 5]
    torch.testing.assert_close(its[5], backward_lib.iterate(affine, x0, orders.backward(), [5])[5])
