"""Composition orders against closed forms (Examples 2.4, 3.1) and hand-composed maps."""

from __future__ import annotations

import pytest
import torch

import backward_lib
from backward_lib import orders

N = 40


def compose(T, x, batch_list):
    """Reference: apply T(·, n) for n in ``batch_list``, the first element first."""
    for n in batch_list:
        x = T(x, n)
    return x


def fwd(T, x, n):
    return compose(T, x, range(1, n + 1))  # T_n ∘ … ∘ T_1 (x)


def bwd(T, x, n):
    return compose(T, x, range(n, 0, -1))  # T_1 ∘ … ∘ T_n (x)


# ---------------------------------------------------------------- Example 3.1


def _noise() -> list[float]:
    g = torch.Generator().manual_seed(31)
    return torch.randn(N, generator=g, dtype=torch.float64).tolist()


def closed_form(order: str, h: float, x0: float, eps: list[float], n: int) -> float:
    q = 1.0 - h
    if order == "forward":  # newest noise at full weight
        s = sum(q ** (n - k) * eps[k - 1] for k in range(1, n + 1))
    else:  # newest noise at weight (1 − h)^(n−1)
        s = sum(q ** (k - 1) * eps[k - 1] for k in range(1, n + 1))
    return q**n * x0 - h * s


@pytest.mark.parametrize(
    ("order", "h"),
    [
        ("forward", 0.1),
        ("forward", 0.5),
        ("forward", 1.5),
        ("backward", 0.1),
        ("backward", 0.5),
        ("backward", 1.5),
    ],
)
def test_example_3_1_closed_forms(order, h):
    eps = _noise()
    x0 = 2.0
    eps_t = torch.tensor(eps, dtype=torch.float64)

    def step(x, n):
        return (1 - h) * x - h * eps_t[n - 1]

    its = backward_lib.iterate(step, torch.tensor(x0, dtype=torch.float64), orders.get(order), N)
    assert list(its) == list(range(1, N + 1))
    for n, x in its.items():
        assert x.dtype == torch.float64
        assert abs(float(x) - closed_form(order, h, x0, eps, n)) < 1e-12, (order, h, n)
    # the two orders really differ (otherwise the test above could not tell them apart)
    other = "backward" if order == "forward" else "forward"
    assert abs(float(its[N]) - closed_form(other, h, x0, eps, N)) > 1e-3


@pytest.mark.parametrize("h", [0.1, 0.5, 1.5])
def test_example_3_1_backward_increments_decay_geometrically(h):
    """x̃_{n+1} − x̃_n = −h (1 − h)^n ε_{n+1}: the newest noise enters ever more weakly."""
    eps = torch.tensor(_noise(), dtype=torch.float64)
    its = backward_lib.iterate(
        lambda x, n: (1 - h) * x - h * eps[n - 1],
        torch.tensor(0.0, dtype=torch.float64),
        orders.backward(),
        N,
    )
    for n in range(1, N):
        expected = -h * (1 - h) ** n * float(eps[n])
        assert abs(float(its[n + 1] - its[n]) - expected) < 1e-12


# ---------------------------------------------------------------- Example 2.4


def test_example_2_4_constant_maps():
    g = torch.Generator().manual_seed(24)
    coins = torch.randint(0, 2, (N,), generator=g).tolist()
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert 0 < sum(coins) < N  # both maps occur

    def const(n):
        return a if coins[n - 1] else b

    def step(x, n):
        return const(n).clone()

    x0 = torch.tensor([5.0, 5.0], dtype=torch.float64)
    back = backward_lib.iterate(step, x0, orders.backward(), N)
    fore = backward_lib.iterate(step, x0, orders.forward(), N)
    for n in range(1, N + 1):
        assert torch.equal(back[n], const(1)), n  # the map applied last is always T_1
        assert torch.equal(fore[n], const(n)), n  # the map applied last is T_n
    # forward keeps jumping between a and b
    assert {tuple(v.tolist()) for v in fore.values()} == {(1.0, 0.0), (0.0, 1.0)}


# ---------------------------------------------------------------- reset / delayed / window by hand


def ref_reset(T, x0, n, r, start):
    if n <= r:
        return bwd(T, x0, n)
    theta_r = fwd(T, x0, r) if start == "forward" else bwd(T, x0, r)
    return compose(T, theta_r, range(n, r, -1))  # T_{r+1} ∘ … ∘ T_n (θ_r)


def ref_delayed(T, x0, n, s):
    if n <= s:
        return fwd(T, x0, n)
    return compose(T, fwd(T, x0, s), range(n, s, -1))


def ref_window(T, x0, n, W, start):
    r = W * ((n - 1) // W)
    if r == 0:
        return bwd(T, x0, n)
    theta_r = fwd(T, x0, r) if start == "forward" else ref_window(T, x0, r, W, start)
    return compose(T, theta_r, range(n, r, -1))


STEPS = 13


@pytest.mark.parametrize(
    ("order", "reference"),
    [
        (orders.forward(), lambda T, x, n: fwd(T, x, n)),
        (orders.backward(), lambda T, x, n: bwd(T, x, n)),
        (orders.reset(at=5), lambda T, x, n: ref_reset(T, x, n, 5, "forward")),
        (orders.reset(at=5, start="backward"), lambda T, x, n: ref_reset(T, x, n, 5, "backward")),
        (orders.reset(at=1), lambda T, x, n: ref_reset(T, x, n, 1, "forward")),
        (
            orders.reset(at=STEPS - 1, start="backward"),
            lambda T, x, n: ref_reset(T, x, n, STEPS - 1, "backward"),
        ),
        (orders.delayed(after=4), lambda T, x, n: ref_delayed(T, x, n, 4)),
        (orders.delayed(after=STEPS - 1), lambda T, x, n: ref_delayed(T, x, n, STEPS - 1)),
        (orders.window(4), lambda T, x, n: ref_window(T, x, n, 4, "forward")),
        (orders.window(4, start="window"), lambda T, x, n: ref_window(T, x, n, 4, "window")),
        (orders.window(3, start="window"), lambda T, x, n: ref_window(T, x, n, 3, "window")),
        (orders.window(1), lambda T, x, n: ref_window(T, x, n, 1, "forward")),
        (orders.get("reset", at=3, start="backward"), lambda T, x, n: ref_reset(T, x, n, 3, "backward")),
    ],
    ids=lambda v: str(v) if isinstance(v, orders.Order) else "ref",
)
def test_orders_equal_hand_composition(affine, x0, order, reference):
    its = backward_lib.iterate(affine, x0, order, STEPS)
    assert list(its) == list(range(1, STEPS + 1))
    for n in range(1, STEPS + 1):
        torch.testing.assert_close(its[n], reference(affine, x0, n), atol=1e-12, rtol=0, msg=f"step {n}")
    # sparse recording gives the same points
    sparse = backward_lib.iterate(affine, x0, order, [STEPS, 2, 7])
    assert list(sparse) == [2, 7, STEPS]
    for n, x in sparse.items():
        torch.testing.assert_close(x, its[n], atol=1e-12, rtol=0)


def test_variants_differ(affine, x0):
    """The hand references are not all the same point, so the table above can fail."""
    n = 11
    pts = {
        "forward": fwd(affine, x0, n),
        "backward": bwd(affine, x0, n),
        "reset_f": ref_reset(affine, x0, n, 5, "forward"),
        "reset_b": ref_reset(affine, x0, n, 5, "backward"),
        "window_f": ref_window(affine, x0, n, 4, "forward"),
        "window_w": ref_window(affine, x0, n, 4, "window"),
    }
    names = list(pts)
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            assert float((pts[p] - pts[q]).norm()) > 1e-4, (p, q)


def test_backward_of_reversed_schedule_is_forward(affine, x0):
    def reversed_step(x, n):
        return affine(x, STEPS + 1 - n)

    back = backward_lib.iterate(reversed_step, x0, orders.backward(), [STEPS])[STEPS]
    fore = backward_lib.iterate(affine, x0, orders.forward(), [STEPS])[STEPS]
    torch.testing.assert_close(back, fore, atol=1e-12, rtol=0)
    assert float((fore - backward_lib.iterate(affine, x0, orders.backward(), [STEPS])[STEPS]).norm()) > 1e-4


def test_step_one_is_the_same_for_every_order(affine, x0):
    first = affine(x0, 1)
    for order in (orders.forward(), orders.backward(), orders.window(3), orders.delayed(after=2)):
        its = backward_lib.iterate(affine, x0, order, [1, 5])
        torch.testing.assert_close(its[1], first, atol=0, rtol=0)


def test_chain_structure():
    c = orders.reset(at=3).chain(6)
    assert list(c.batches) == [6, 5, 4]
    assert list(c.start.batches) == [1, 2, 3] and c.start.start is None
    assert c.cost() == 6
    assert list(orders.backward().chain(4).batches) == [4, 3, 2, 1]
    w = orders.window(3, start="window").chain(8)
    assert list(w.batches) == [8, 7] and list(w.start.batches) == [6, 5, 4]
    assert list(w.start.start.batches) == [3, 2, 1]


def test_order_names_and_str():
    assert str(orders.reset(at=7, start="backward")) == "reset(at=7, start=backward)"
    assert str(orders.delayed(after=3)) == "delayed(after=3)"
    assert str(orders.window(5)) == "window(5, start=forward)"
    assert str(orders.get("backward")) == "backward"
    assert set(orders.NAMES) == {"forward", "backward", "reset", "delayed", "window"}


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: orders.reset(at=0), r"\bat\b"),
        (lambda: orders.reset(at=2.5), r"\bat\b"),
        (lambda: orders.reset(at=3, start="sideways"), "start"),
        (lambda: orders.delayed(after=0), "after"),
        (lambda: orders.window(0), "every"),
        (lambda: orders.window(2, start="backward"), "start"),
        (lambda: orders.get("sideways"), "order"),
    ],
)
def test_bad_order_settings(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()
