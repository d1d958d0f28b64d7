"""Chain batching (vmap over stacked chains) against the sequential engine, on the CPU."""

from __future__ import annotations

import pytest

import backward_lib
from backward_lib import batched, maps, orders
from backward_lib.neighbours import agnes
from conftest import max_diff

OPTIMIZERS = {
    "sgd": lambda: maps.sgd(0.1),
    "nesterov": lambda: maps.sgd(0.1, momentum=0.9, nesterov=True),
    "adamw": lambda: maps.adamw(0.01),
    "momentum": lambda: maps.get("momentum", 0.1),
    "agnes": lambda: agnes.agnes(0.05, 0.1, 0.8),
}
ORDERS = {
    "backward": orders.backward(),
    "reset": orders.reset(at=3, start="forward"),
    "reset-backward": orders.reset(at=4, start="backward"),
    "window": orders.window(3),
}


@pytest.mark.parametrize("problem", ["net", "bn_net"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("order", list(ORDERS))
def test_batched_equals_sequential(problem, opt, order, request):
    p = request.getfixturevalue(problem)
    optimizer = OPTIMIZERS[opt]()
    T = p.step_map(optimizer)
    theta0 = p.theta0()
    steps = [1, 2, 4, 5, 7, 8]
    seq = backward_lib.iterate(T, theta0, ORDERS[order], steps)
    bat = dict(batched.batched_trajectory(T, theta0, ORDERS[order], steps, group=4))  # vmap of T.step
    assert list(bat) == steps
    # float64; AdamW divides by √v + ε, which amplifies summation-order differences early on
    tol = 1e-8 if opt == "adamw" else 1e-12
    for n in steps:
        assert max_diff(seq[n], bat[n]) < tol, n
    # and the chains really differ from each other (a wrong batch index would collapse them)
    assert max_diff(bat[7], bat[8]) > 1e-3


def test_batched_refuses_shared_work(net):
    T = net.step_map(maps.sgd(0.1))
    with pytest.raises(ValueError, match="order"):
        list(batched.batched_trajectory(T, net.theta0(), orders.forward(), 3))
    with pytest.raises(ValueError, match="group"):
        list(batched.batched_trajectory(T, net.theta0(), orders.backward(), 3, group=0))
    with pytest.raises(ValueError, match="NetworkMap"):
        list(batched.batched_trajectory(lambda th, n: th, net.theta0(), orders.backward(), 3))
    with pytest.raises(ValueError, match="batch"):
        batched.run_chains(T, net.theta0(), [[1, 99]])
